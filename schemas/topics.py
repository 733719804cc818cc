"""The contract's topics by name, with the model of each record and the key it is sent under."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aiokafka.partitioner import murmur2
from pydantic import BaseModel, TypeAdapter

from schemas import api, inputs, internal, outputs


class Topic(StrEnum):
    CHAT_MESSAGES = "chat.messages"
    AGENT_CONTROL = "agent.control"
    AGENT_PRESENCE = "agent.presence"
    DIRECTORY = "directory"
    WORKFLOWS = "workflows"
    CONFIG_REQUESTS = "handoff.config.requests"
    CONVERSATION_UPDATES = "conversation.updates"
    HANDOFF_EVENTS = "handoff.events"
    TICKETS_CREATED = "tickets.created"
    ASSIGNMENTS = "assignments"
    CHAT_OUTBOUND = "chat.outbound"
    CONVERSATION_STATUS = "conversation.status"
    CONFIG_CHANGES = "handoff.config.changes"
    DEADLETTER = "deadletter"
    # The project's own topics (an extension of the contract, not read by other teams).
    ACCOUNT_EVENTS = "handoff.account-events"
    USER_ACCOUNTS = "handoff.user-accounts"
    API_TOKENS = "handoff.api-tokens"


@dataclass(frozen=True)
class TopicSpec:
    topic: Topic
    model: type[BaseModel] | TypeAdapter[object]
    key: str
    compacted: bool = False


INPUT_TOPICS = (
    Topic.CHAT_MESSAGES,
    Topic.AGENT_CONTROL,
    Topic.AGENT_PRESENCE,
    Topic.DIRECTORY,
    Topic.WORKFLOWS,
    Topic.CONFIG_REQUESTS,
    Topic.CONVERSATION_UPDATES,
)
OUTPUT_TOPICS = (
    Topic.HANDOFF_EVENTS,
    Topic.TICKETS_CREATED,
    Topic.ASSIGNMENTS,
    Topic.CHAT_OUTBOUND,
    Topic.CONVERSATION_STATUS,
    Topic.CONFIG_CHANGES,
    Topic.DEADLETTER,
)
INTERNAL_TOPICS = (Topic.ACCOUNT_EVENTS, Topic.USER_ACCOUNTS, Topic.API_TOKENS)

SPECS: dict[Topic, TopicSpec] = {
    s.topic: s
    for s in (
        TopicSpec(Topic.CHAT_MESSAGES, inputs.ChatMessage, "conversation_id"),
        TopicSpec(Topic.AGENT_CONTROL, inputs.AgentControl, "account_id"),
        TopicSpec(Topic.AGENT_PRESENCE, inputs.Presence, "user_id"),
        TopicSpec(Topic.DIRECTORY, TypeAdapter(inputs.DirectoryEntry), "<kind>:<id>", True),
        TopicSpec(Topic.WORKFLOWS, inputs.Workflow, "workflow_id", True),
        TopicSpec(Topic.CONFIG_REQUESTS, inputs.ConfigRequest, "account_id"),
        TopicSpec(Topic.CONVERSATION_UPDATES, inputs.ConversationUpdate, "conversation_id"),
        TopicSpec(Topic.HANDOFF_EVENTS, outputs.HandoffEvent, "conversation_id"),
        TopicSpec(Topic.TICKETS_CREATED, outputs.TicketCreated, "conversation_id"),
        TopicSpec(Topic.ASSIGNMENTS, outputs.Assignment, "conversation_id"),
        TopicSpec(Topic.CHAT_OUTBOUND, outputs.ChatOutbound, "conversation_id"),
        TopicSpec(Topic.CONVERSATION_STATUS, outputs.ConversationStatus, "conversation_id"),
        TopicSpec(Topic.CONFIG_CHANGES, outputs.ConfigChange, "account_id"),
        TopicSpec(Topic.DEADLETTER, outputs.DeadLetter, "original key"),
        TopicSpec(Topic.ACCOUNT_EVENTS, TypeAdapter(internal.AccountEvent), "account_id"),
        TopicSpec(Topic.USER_ACCOUNTS, internal.UserAccount, "user_id"),
        TopicSpec(Topic.API_TOKENS, api.ApiToken, "token_id", True),
    )
}


def json_schema(topic: Topic) -> dict[str, object]:
    """The JSON Schema of one topic's records, as generated from its model."""
    model = SPECS[topic].model
    if isinstance(model, TypeAdapter):
        return model.json_schema(mode="validation")
    return model.model_json_schema(mode="validation")


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition a record keyed `key` lands on: Kafka's default partitioner (murmur2), as
    the connectors' producers, Faust and aiokafka use it. The one home of this formula."""
    raw = key.encode() if isinstance(key, str) else key
    return int(murmur2(raw) & 0x7FFFFFFF) % partitions
