"""Model profiles: the stop sequences and end-of-turn markers that belong to a model.

A profile is derived from the model folder when there is one (``tokenizer_config.json`` eos
token, ``generation_config.json`` eos ids, the role header the chat template writes), else from
a known family matched on the model name; an explicit override replaces the stop sequences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from punie.errors import ConfigError

__all__ = [
    "ModelProfile",
    "known_families",
    "resolve_profile",
    "resolve_served_profile",
    "served_model_folder",
]

log = structlog.get_logger(__name__)

# Plain-text role headers a model leaks when it starts writing the next turn itself (glaive-style
# data teaches "USER:"). Lowercase "\nuser:" is left out: it is a common YAML key in code replies.
LEAKED_ROLE_HEADERS: tuple[str, ...] = ("\nUSER:", "\nASSISTANT:", "\nFUNCTION RESPONSE:")


@dataclass(frozen=True)
class ModelProfile:
    """Where a model's turns end, and what the client sends and cuts on."""

    family: str
    stop_sequences: tuple[str, ...]
    end_of_turn: tuple[str, ...]
    cut_markers: tuple[str, ...]
    source: str


def _family(
    family: str, end_of_turn: tuple[str, ...], other_stops: tuple[str, ...]
) -> ModelProfile:
    stops = _unique([*end_of_turn, *other_stops])
    return _profile(family, stops, end_of_turn, f"family {family}")


def _profile(
    family: str, stops: tuple[str, ...], end_of_turn: tuple[str, ...], source: str
) -> ModelProfile:
    """A profile that cuts on its stop sequences and on leaked role headers."""
    return ModelProfile(
        family=family,
        stop_sequences=stops,
        end_of_turn=end_of_turn,
        cut_markers=_unique([*stops, *LEAKED_ROLE_HEADERS]),
        source=source,
    )


def known_families() -> dict[str, ModelProfile]:
    """The built-in profiles, by family name (a fresh dict on every call)."""
    return {
        "chatml": _family("chatml", ("<|im_end|>",), ("<|endoftext|>", "<|im_start|>")),
        "llama3": _family(
            "llama3", ("<|eot_id|>", "<|eom_id|>"), ("<|end_of_text|>", "<|start_header_id|>")
        ),
        "mistral": _family("mistral", ("</s>",), ("[INST]",)),
        "gemma": _family("gemma", ("<end_of_turn>",), ("<eos>", "<start_of_turn>")),
    }


# Matched on the lowercased model name, first hit wins.
_NAME_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"qwen|smollm|chatml|hermes"), "chatml"),
    (re.compile(r"llama[-_ .]?3"), "llama3"),
    (re.compile(r"mistral|mixtral|codestral"), "mistral"),
    (re.compile(r"gemma"), "gemma"),
)

# Tags a chat template wraps tool results in; the model itself never writes them.
_TOOL_RESULT_TAGS: tuple[str, ...] = ("<tool_response>",)

# Tokens whose presence names a family, for profiles derived from a folder.
_TOKEN_FAMILIES: tuple[tuple[str, str], ...] = (
    ("<|im_end|>", "chatml"),
    ("<|eot_id|>", "llama3"),
    ("<end_of_turn>", "gemma"),
    ("[INST]", "mistral"),
)

# End-of-turn tokens of the known families: one the chat template writes ends a turn even when
# the folder's eos is another token (a base-model tokenizer config names `<|endoftext|>`).
_END_OF_TURN_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")

# A template literal written right before the role: '<|im_start|>' + message['role'].
_ROLE_HEADER = re.compile(
    r"""(?P<q>['"])(?P<header>(?:(?!(?P=q)).){1,40}?)(?P=q)\s*\+\s*"""
    r"""(?:message\s*\[\s*['"]role['"]\s*\]|message\.role\b|role\b)"""
)


def resolve_profile(
    model: str | None = None,
    *,
    model_dir: Path | None = None,
    stop_override: Sequence[str] | None = None,
    hf_cache_dir: Path | None = None,
) -> ModelProfile:
    """The profile for ``model``: from its folder, else its family name, else ``stop_override``.

    ``model_dir`` (or ``model`` naming a local folder, or a Hugging Face id already in the local
    cache under ``hf_cache_dir``) is read for its eos tokens and chat-template role header.
    ``stop_override`` replaces the stop sequences. Raises ``ConfigError`` when no stop sequences
    can be found, or when ``model_dir`` is given but is not a folder.
    """
    profile = None
    if model_dir is not None:
        if not Path(model_dir).is_dir():
            raise ConfigError(
                f"model folder {model_dir} does not exist or is not a folder: "
                "pass the folder holding the model's tokenizer_config.json, or leave it out"
            )
        profile = _from_folder(Path(model_dir))
    if profile is None and model:
        folder = _local_folder(model, hf_cache_dir)
        if folder is not None:
            profile = _from_folder(folder)
        if profile is None:
            profile = _from_name(model)
    if stop_override is not None:
        profile = _overridden(profile, stop_override, model)
    if profile is None or not profile.stop_sequences:
        where = f"model folder {model_dir}" if model_dir is not None else f"model {model!r}"
        raise ConfigError(
            f"no stop sequences found for {where}: it has no tokenizer_config.json / "
            "generation_config.json eos token and its name matches no known family "
            f"({', '.join(known_families())}); pass them with --stop (e.g. --stop '<|im_end|>')"
        )
    log.info(
        "profile_resolved",
        model=model,
        family=profile.family,
        source=profile.source,
        stop_sequences=list(profile.stop_sequences),
    )
    return profile


def served_model_folder(base_url: str, *, timeout_s: float = 10.0) -> Path | None:
    """The local model folder the OpenAI-compatible server at `base_url` serves, if it says.

    `mlx_lm server` lists its `--model` folder (resolved) last in GET /v1/models, after the
    Hugging Face cache's models; a server that lists no existing local folder gives None.
    """
    import httpx

    try:
        response = httpx.get(f"{base_url.rstrip('/')}/models", timeout=timeout_s)
        response.raise_for_status()
        ids = [str(entry.get("id", "")) for entry in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
        log.info("served_model_unknown", base_url=base_url, error=str(exc))
        return None
    folders = [Path(i) for i in ids if i.startswith("/") and Path(i).is_dir()]
    return folders[-1] if folders else None


def resolve_served_profile(
    base_url: str, model: str | None, *, stop_override: Sequence[str] | None = None
) -> ModelProfile:
    """The profile of `model` as served at `base_url`.

    A `model` that is a local folder, or a name of a known family, resolves as in
    `resolve_profile`; `default_model` (what an mlx-lm server started by Punie answers to), no
    name, or a name that resolves to nothing is looked up on the server: the folder it lists
    in GET /models gives the profile. Raises ConfigError when neither way finds stop sequences.
    """
    named = model is not None and model != "default_model"
    if named and (Path(model).expanduser().is_dir() or _from_name(model) is not None):
        return resolve_profile(model, stop_override=stop_override)
    folder = served_model_folder(base_url)
    if folder is not None:
        log.info("served_model_folder", base_url=base_url, folder=str(folder))
        return resolve_profile(model or str(folder), model_dir=folder, stop_override=stop_override)
    try:
        return resolve_profile(model, stop_override=stop_override)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc} (the server at {base_url} lists no local model folder in GET /models)"
        ) from None


def _overridden(
    profile: ModelProfile | None, stop_override: Sequence[str], model: str | None
) -> ModelProfile:
    stops = _unique(s for s in stop_override if s)
    if not stops:
        raise ConfigError(
            f"the stop override for model {model!r} is empty: pass at least one non-empty "
            "sequence with --stop, or leave the override out to derive them from the model"
        )
    if profile is None:
        return ModelProfile(
            family="custom",
            stop_sequences=stops,
            end_of_turn=stops,
            cut_markers=_unique([*stops, *LEAKED_ROLE_HEADERS]),
            source="override",
        )
    return replace(
        profile,
        stop_sequences=stops,
        cut_markers=_unique([*stops, *profile.end_of_turn, *LEAKED_ROLE_HEADERS]),
        source="override",
    )


def _from_name(model: str) -> ModelProfile | None:
    lowered = model.lower()
    for pattern, family in _NAME_FAMILIES:
        if pattern.search(lowered):
            profile = known_families()[family]
            return replace(profile, source=f"family {family} (from model name {model!r})")
    return None


def _local_folder(model: str, hf_cache_dir: Path | None) -> Path | None:
    """A folder for ``model``: the path itself, or a Hugging Face cache snapshot (no network)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", model):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(
            model, local_files_only=True, cache_dir=str(hf_cache_dir) if hf_cache_dir else None
        )
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return Path(snapshot)


def _from_folder(folder: Path) -> ModelProfile | None:
    """Derive the profile from a model folder's tokenizer and generation configs."""
    tokenizer_config = _read_json(folder / "tokenizer_config.json") or {}
    generation_config = _read_json(folder / "generation_config.json") or {}
    template = _chat_template(folder, tokenizer_config)

    eos: list[str] = []
    if (token := _token_text(tokenizer_config.get("eos_token"))) is not None:
        eos.append(token)
    ids = generation_config.get("eos_token_id")
    ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
    if ids:
        names = _id_to_token(folder, tokenizer_config)
        eos.extend(names[i] for i in ids if isinstance(i, int) and i in names)
    eos_tokens = _unique(eos)
    if not eos_tokens:
        return None

    in_template = tuple(t for t in eos_tokens if template and t in template)
    written = tuple(t for t in _END_OF_TURN_TOKENS if template and t in template)
    end_of_turn = _unique([*in_template, *written]) or eos_tokens[:1]
    headers = _role_headers(template)
    # A model that writes the tool's own turn marker is inventing a tool result.
    invented = tuple(t for t in _TOOL_RESULT_TAGS if template and t in template)
    stops = _unique([*end_of_turn, *eos_tokens, *headers, *invented])
    family = next((f for token, f in _TOKEN_FAMILIES if token in stops), "custom")
    return _profile(family, stops, end_of_turn, f"model folder {folder}")


def _role_headers(template: str | None) -> tuple[str, ...]:
    """The special token the chat template writes before each role (``<|im_start|>``)."""
    if not template:
        return ()
    headers = [m.group("header").strip() for m in _ROLE_HEADER.finditer(template)]
    found = [h for h in headers if h.startswith(("<", "[")) and len(h) > 2]
    if "[INST]" in template:
        found.append("[INST]")
    return _unique(found)


def _chat_template(folder: Path, tokenizer_config: dict[str, Any]) -> str | None:
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        template = "\n".join(str(t.get("template", "")) for t in template if isinstance(t, dict))
    if not template and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if not template:
        template = (_read_json(folder / "chat_template.json") or {}).get("chat_template")
    return template if isinstance(template, str) and template else None


def _id_to_token(folder: Path, tokenizer_config: dict[str, Any]) -> dict[int, str]:
    """Token id -> text for the added tokens (tokenizer_config first, then tokenizer.json)."""
    names: dict[int, str] = {}
    for key, entry in (tokenizer_config.get("added_tokens_decoder") or {}).items():
        text = _token_text(entry)
        if text is not None and str(key).isdigit():
            names[int(key)] = text
    if not names:
        for entry in (_read_json(folder / "tokenizer.json") or {}).get("added_tokens") or []:
            text = _token_text(entry) if isinstance(entry, dict) else None
            if text is not None and isinstance(entry.get("id"), int):
                names[entry["id"]] = text
    return names


def _token_text(value: Any) -> str | None:
    """A token as a string: either a plain string or an AddedToken dict with ``content``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"cannot read {path}: {err}; fix or remove the file, or pass the stop sequences "
            "with --stop"
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds no JSON object; fix the file or pass --stop")
    return data


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
