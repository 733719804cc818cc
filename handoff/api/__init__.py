"""The settings API's parts that are not the web server: tokens, the OpenAPI text, the client."""
