"""The OpenAPI 3 document of Backline's HTTP API (served at `/openapi.json`)."""

from __future__ import annotations

from typing import Any

from bot.limits import MAX_MESSAGE_CHARS, MAX_SENDER_ID_CHARS

_ERROR = {
    "type": "object",
    "required": ["error", "reason", "code"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong and how to fix it"},
        "reason": {"type": "string"},
        "code": {"type": "integer"},
        "field": {"type": "string"},
        "retry_after": {"type": "integer"},
    },
}

_BUTTON = {"type": "object", "required": ["title", "payload"],
           "properties": {"title": {"type": "string"}, "payload": {"type": "string"}}}

_BOT_MESSAGE = {
    "type": "object",
    "required": ["recipient_id"],
    "properties": {
        "recipient_id": {"type": "string"},
        "text": {"type": "string"},
        "buttons": {"type": "array", "items": {"$ref": "#/components/schemas/Button"}},
        "image": {"type": "string"},
        "attachment": {},
        "custom": {},
    },
}

_MESSAGE_REQUEST = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "sender": {"type": "string", "nullable": True, "minLength": 1, "maxLength": MAX_SENDER_ID_CHARS,
                   "pattern": "^[^\\x00-\\x1f\\x7f]*$",
                   "description": "conversation id; `default` when missing"},
        "message": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS, "pattern": "\\S"},
        "metadata": {"type": "object", "nullable": True, "description": "JSON nested at most 32 levels"},
        "input_channel": {"type": "string", "nullable": True},
    },
}

_ENTITY = {
    "type": "object",
    "required": ["entity", "value", "start", "end"],
    "properties": {"entity": {"type": "string"}, "value": {}, "start": {"type": "integer"},
                   "end": {"type": "integer"}, "extractor": {"type": "string", "nullable": True},
                   "confidence_entity": {"type": "number"}, "role": {"type": "string"},
                   "group": {"type": "string"}, "processors": {"type": "array"}},
}

_INTENT = {"type": "object", "required": ["name", "confidence"],
           "properties": {"name": {"type": "string", "nullable": True}, "confidence": {"type": "number"}}}

_PARSE_RESULT = {
    "type": "object",
    "required": ["text", "intent", "entities", "intent_ranking"],
    "properties": {
        "text": {"type": "string"},
        "intent": {"$ref": "#/components/schemas/Intent"},
        "entities": {"type": "array", "items": {"$ref": "#/components/schemas/Entity"}},
        "intent_ranking": {"type": "array", "items": {"$ref": "#/components/schemas/Intent"}},
        "text_tokens": {"type": "array"},
        "response_selector": {"type": "object"},
        "message_id": {"type": "string", "nullable": True},
    },
}

_TRACKER = {
    "type": "object",
    "required": ["sender_id", "slots", "latest_message", "events"],
    "properties": {
        "sender_id": {"type": "string"},
        "slots": {"type": "object"},
        "latest_message": {"type": "object", "nullable": True},
        "latest_event_time": {"type": "number", "nullable": True},
        "followup_action": {"type": "string", "nullable": True},
        "paused": {"type": "boolean"},
        "events": {"type": "array", "nullable": True, "items": {
            "type": "object", "required": ["event"],
            "properties": {"event": {"type": "string"}, "timestamp": {"type": "number", "nullable": True}}}},
        "latest_input_channel": {"type": "string", "nullable": True},
        "active_loop": {"type": "object", "nullable": True},
        "latest_action": {"type": "object", "nullable": True},
        "latest_action_name": {"type": "string", "nullable": True},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad input", 401: "auth token missing", 403: "auth token wrong",
            404: "not found", 413: "request body or message too long",
            415: "body is not Content-Type: application/json", 429: "rate limited (Retry-After)",
            503: "conversation store unavailable or conversation unreadable (Retry-After)"}
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, text[c]) for c in codes}


def openapi_document(*, auth: bool = False) -> dict[str, Any]:
    """The API description; with `auth` the protected operations declare the `?token=` key."""
    secured = {"security": [{"token": []}]} if auth else {}
    auth_errors = (401, 403) if auth else ()
    conversation_id = {"name": "conversation_id", "in": "path", "required": True,
                       "description": "percent-encoded in the path (`user%40x.com`)",
                       "schema": {"type": "string", "minLength": 1, "maxLength": MAX_SENDER_ID_CHARS,
                                  "pattern": "^[^/%\\x00-\\x1f\\x7f]+$"}}
    body = {"required": True, "content": {"application/json": {"schema": {}}}}
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Backline HTTP API", "version": "1.0.0",
                 "description": "Rasa 3.x compatible REST channel and HTTP API of Backline, "
                                "a symptom-triage chatbot for back problems."},
        "paths": {
            "/webhooks/rest/webhook": {"post": {
                "summary": "Send a user message, get the bot's replies (Rasa REST channel)",
                "operationId": "restWebhook",
                "parameters": [{"name": "stream", "in": "query", "required": False,
                                "schema": {"type": "boolean"},
                                "description": "newline-delimited JSON (text/event-stream)"}],
                "requestBody": {**body, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/MessageRequest"}}}},
                "responses": {
                    "200": {"description": "bot messages in order", "content": {
                        "application/json": {"schema": {"type": "array", "items": {
                            "$ref": "#/components/schemas/BotMessage"}}},
                        "text/event-stream": {"schema": {"type": "string"}}}},
                    **_errors(400, 413, 415),
                    "429": {"description": "rate limited (Retry-After): the safety screen's reply to the "
                                           "message, then how long to wait, as bot messages",
                            "content": {"application/json": {"schema": {"type": "array", "items": {
                                "$ref": "#/components/schemas/BotMessage"}}}}}}}},
            "/webhooks/rest/": {"get": {
                "summary": "REST channel health", "operationId": "restHealth",
                "responses": {"200": _json({"type": "object", "required": ["status"],
                                            "properties": {"status": {"enum": ["ok"]}}}, "ok")}}},
            "/model/parse": {"post": {
                "summary": "Parse a text with the NLU model", "operationId": "parse", **secured,
                "requestBody": {**body, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"],
                    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS,
                                            "pattern": "\\S"},
                                   "message_id": {"type": "string", "nullable": True}}}}}},
                "responses": {"200": _json({"$ref": "#/components/schemas/ParseResult"},
                                           "parse result"),
                              **_errors(400, *auth_errors, 413, 415, 429)}}},
            "/conversations/{conversation_id}/tracker": {"get": {
                "summary": "A conversation's tracker", "operationId": "getTracker", **secured,
                "parameters": [conversation_id, {
                    "name": "include_events", "in": "query", "required": False,
                    "schema": {"type": "string",
                               "enum": ["ALL", "AFTER_RESTART", "APPLIED", "NONE",
                                        "all", "after_restart", "applied", "none"]}}],
                "responses": {"200": _json({"$ref": "#/components/schemas/Tracker"}, "tracker"),
                              **_errors(400, *auth_errors, 404, 503)}}},
            "/conversations/{conversation_id}": {"delete": {
                "summary": "Erase a conversation everywhere it is stored",
                "operationId": "deleteConversation", **secured, "parameters": [conversation_id],
                "responses": {"200": _json({"type": "object", "required": ["deleted"],
                                            "properties": {"deleted": {"type": "string"}}},
                                           "deleted"),
                              **_errors(400, *auth_errors, 404, 503)}}},
            "/status": {"get": {
                "summary": "Loaded model", "operationId": "status", **secured,
                "responses": {"200": _json({"type": "object", "properties": {
                    "model_file": {"type": "string", "nullable": True},
                    "model_id": {"type": "string", "nullable": True},
                    "num_active_training_jobs": {"type": "integer"}}}, "status"),
                    **_errors(*auth_errors)}}},
            "/health": {"get": {
                "summary": "Liveness: 200 when the conversation stores answer", "operationId": "health",
                "responses": {"200": _json({"type": "object", "required": ["status"],
                                            "properties": {"status": {"enum": ["ok"]}}}, "ok"),
                              **_errors(503)}}},
            "/widget/state/{conversation_id}": {"get": {
                "summary": "What the widget shows: triage level, messages since `after`",
                "operationId": "widgetState", "parameters": [conversation_id, {
                    "name": "after", "in": "query", "required": False,
                    "schema": {"type": "integer", "minimum": 0, "maximum": 10**15 - 1},
                    "description": "the `seq` of an earlier answer: only later messages (default 0: all)"}],
                "responses": {"200": _json({"type": "object", "required": [
                    "sender_id", "triage_level", "emergency_number", "messages", "seq", "reset"], "properties": {
                    "sender_id": {"type": "string"},
                    "triage_level": {"type": "string"},
                    "emergency_number": {"type": "string"},
                    "crisis_line": {"type": "string"},
                    "messages": {"type": "array", "items": {"type": "object"}},
                    "seq": {"type": "integer"},
                    "reset": {"type": "boolean"}}}, "state"),
                    **_errors(400, 429, 503)}}},
        },
        "components": {"schemas": {
            "Error": _ERROR, "Button": _BUTTON, "BotMessage": _BOT_MESSAGE,
            "MessageRequest": _MESSAGE_REQUEST, "Entity": _ENTITY, "Intent": _INTENT,
            "ParseResult": _PARSE_RESULT, "Tracker": _TRACKER}},
    }
    if auth:
        doc["components"]["securitySchemes"] = {
            "token": {"type": "apiKey", "in": "query", "name": "token"}}
    return doc
