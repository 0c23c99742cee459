"""Chat-record shapes -> :class:`Conversation`: ShareGPT, OpenAI messages, MT-Bench turns.

- ShareGPT: ``{"conversations": [{"from": "human"|"gpt"|..., "value": str}]}``
- OpenAI: ``{"messages": [{"role", "content", "tool_calls"?}], "tools"?: [...]}``; content may
  be a string, a list of ``{"type": "text", "text"}`` parts, or null beside ``tool_calls``.
  An assistant's ``tool_calls`` count as its output text (compact JSON of name + arguments);
  a ``tools`` schema is rendered into the system prompt, as serving stacks do.
- MT-Bench: ``{"question_id", "turns": [str, ...]}``: user turns only, answers unknown.
"""

from __future__ import annotations

import json
from pathlib import Path

from kvplan.errors import InputError
from kvplan.trace.conversation import ROLES, Conversation
from kvplan.trace.inputs import echo

ROLE_NAMES = {
    "system": "system", "human": "user", "user": "user", "gpt": "assistant",
    "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "assistant": "assistant",
    "model": "assistant", "tool": "tool", "function": "tool", "ipython": "tool",
    "observation": "tool",
}


def record_to_conversation(rec: dict, path: Path, place: str, line: int | None) -> Conversation:
    """The conversation in one record of any supported chat shape, or a one-line InputError."""
    if "conversations" in rec:
        msgs = _list(rec, "conversations", path, place, line)
        return _build([_sharegpt_message(m, path, f"{place}: conversations[{i}]", line)
                       for i, m in enumerate(msgs)])
    if "messages" in rec:
        msgs = _list(rec, "messages", path, place, line)
        return messages_to_conversation(msgs, path, place, line, rec.get("tools"))
    if "turns" in rec:
        turns = _list(rec, "turns", path, place, line)
        if not all(isinstance(t, str) for t in turns):
            raise InputError(path, f"{place}: expected a list of strings", line=line,
                             field="turns")
        return _build([p for t in turns for p in (("user", t), ("assistant", None))])
    raise InputError(path, f"{place}: expected a 'conversations', 'messages' or 'turns' field, "
                     f"got keys {echo(sorted(rec)[:6])}", line=line)


def messages_to_conversation(msgs: list, path: Path, place: str, line: int | None,
                             tools: object = None) -> Conversation:
    """A conversation from a list of OpenAI-style role/content messages."""
    pairs = [_openai_message(m, path, f"{place}: messages[{i}]", line)
             for i, m in enumerate(msgs)]
    return _build(_with_tools(pairs, tools))


def _build(pairs: list[tuple[str, str | None]]) -> Conversation:
    return Conversation(roles=tuple(ROLES.index(r) for r, _ in pairs),
                        texts=tuple(t for _, t in pairs))


def _list(rec: dict, key: str, path: Path, place: str, line: int | None) -> list:
    value = rec[key]
    if not isinstance(value, list):
        raise InputError(path, f"{place}: expected a list, got {type(value).__name__}",
                         line=line, field=key)
    return value


def _role(name: object, path: Path, place: str, line: int | None, key: str) -> str:
    role = ROLE_NAMES.get(name.lower()) if isinstance(name, str) else None
    if role is None:
        raise InputError(path, f"{place}: unknown role {json.dumps(name)[:30]}, expected one of "
                         f"{', '.join(sorted(ROLE_NAMES))}", line=line, field=key)
    return role


def _sharegpt_message(m: object, path: Path, place: str, line: int | None) -> tuple[str, str]:
    if not isinstance(m, dict) or "from" not in m or "value" not in m:
        raise InputError(path, f"{place}: expected an object with 'from' and 'value'", line=line)
    if not isinstance(m["value"], str):
        raise InputError(path, f"{place}: expected a string, got {type(m['value']).__name__}",
                         line=line, field="value")
    return _role(m["from"], path, place, line, "from"), m["value"]


def _openai_message(m: object, path: Path, place: str, line: int | None) -> tuple[str, str]:
    if not isinstance(m, dict) or "role" not in m:
        raise InputError(path, f"{place}: expected an object with 'role' and 'content'",
                         line=line)
    role = _role(m["role"], path, place, line, "role")
    text = _content_text(m.get("content"), path, place, line)
    calls = m.get("tool_calls")
    if calls:
        if not isinstance(calls, list):
            raise InputError(path, f"{place}: expected a list", line=line, field="tool_calls")
        text += json.dumps([c.get("function", c) if isinstance(c, dict) else c for c in calls],
                           sort_keys=True, separators=(",", ":"))
    return role, text


def _content_text(content: object, path: Path, place: str, line: int | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [p.get("text") if isinstance(p, dict) else None for p in content]
        for i, t in enumerate(texts):
            if t is not None and not isinstance(t, str):
                raise InputError(path, f"{place}: expected a string, got {type(t).__name__}",
                                 line=line, field=f"content[{i}].text")
        return "".join(t for t in texts if t)
    raise InputError(path, f"{place}: expected a string or a list of parts, got "
                     f"{type(content).__name__}", line=line, field="content")


def _with_tools(pairs: list[tuple[str, str]], tools: object) -> list[tuple[str, str]]:
    """Render a tools schema into the system prompt (prepended when there is none)."""
    if not tools:
        return pairs
    schema = "\n\n# Tools\n" + json.dumps(tools, sort_keys=True, separators=(",", ":"))
    if pairs and pairs[0][0] == "system":
        return [("system", pairs[0][1] + schema), *pairs[1:]]
    return [("system", schema), *pairs]
