"""The chat models already on this machine, by the names a user types.

:func:`discover` searches the places of :mod:`voiceterm.discovery.sources`, reads
each file's GGUF header (never more) and sorts what it finds into chat models,
files that are not chat models, and broken entries (a manifest whose blob is
gone). :meth:`Catalog.find` picks one by name for ``--llm-model NAME``.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from voiceterm import paths
from voiceterm.discovery.gguf import SPLIT_PART, NotGguf, not_chat_reason, read_gguf_header
from voiceterm.discovery.sources import (
    HUGGING_FACE,
    LM_STUDIO,
    MODELS_DIR,
    OLLAMA,
    Candidate,
    Place,
    Source,
    candidates,
    places,
)
from voiceterm.errors import ModelError

log = logging.getLogger(__name__)

# The prefix that tells apart two models of the same name from different tools.
_SOURCE_KEYS: dict[Source, str] = {
    OLLAMA: "ollama",
    HUGGING_FACE: "hf",
    LM_STUDIO: "lmstudio",
    MODELS_DIR: "models",
}


@dataclass(frozen=True, slots=True)
class FoundModel:
    """A model file another tool (or ``models/``) keeps, and whether it can chat."""

    source: Source
    name: str  # what to type after --llm-model
    path: Path
    size_bytes: int
    aliases: tuple[str, ...] = ()
    unusable: str = ""  # why it is not a chat model, or what is broken; "" when usable

    @property
    def usable(self) -> bool:
        return not self.unusable


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything :func:`discover` found, and every place it looked."""

    models: list[FoundModel]
    places: list[Place] = field(default_factory=list)

    @property
    def chat_models(self) -> list[FoundModel]:
        return [model for model in self.models if model.usable]

    def find(self, wanted: str) -> FoundModel:
        """The usable chat model called ``wanted``, or :class:`ModelError` saying why not."""
        matches = _matches(self.models, wanted)
        if len({model.path for model in matches}) == 1:
            matches = matches[:1]  # names of one file (two tags of one Ollama blob)
        if len(matches) > 1:
            raise ModelError(
                f"{wanted!r} names {len(matches)} models on this machine.",
                hint="use one of " + ", ".join(model.name for model in matches),
            )
        if not matches:
            raise ModelError(
                f"The LLM model {wanted!r} does not exist: it is neither a file nor the name "
                f"of a chat model on this machine (looked in {self._looked_in()}).",
                hint=self._suggestion(wanted),
            )
        model = matches[0]
        if not model.usable:
            raise ModelError(
                f"{model.name} ({model.source}) cannot be the chat model: {model.unusable}.",
                hint="`voiceterm models` lists the chat models found on this machine",
            )
        return model

    def describe(self) -> str:
        """The listing ``voiceterm models`` prints."""
        lines = ["Chat models on this machine (use one with --llm-model NAME):"]
        for model in self.chat_models:
            lines.append(f"  {model.name}  ({model.source}, {_size(model.size_bytes)})")
            lines.append(f"      {model.path}")
        if not self.chat_models:
            lines.append("  none")
        others = [model for model in self.models if not model.usable]
        if others:
            lines.append("Not usable as the chat model:")
            lines += [f"  {m.name}  ({m.source}): {m.unusable}" for m in others]
        lines.append("Looked in:")
        lines += [
            f"  {place.source:<20}{place.path}{f'  ({place.absence})' if place.absence else ''}"
            for place in self.places
        ]
        return "\n".join(lines)

    def _looked_in(self) -> str:
        there = [f"{place.path}" for place in self.places if place.exists]
        return ", ".join(there) if there else "no model folder of Ollama, Hugging Face or LM Studio"

    def _suggestion(self, wanted: str) -> str:
        close = _close_names(self.chat_models, wanted)
        if close:
            return "did you mean " + " or ".join(close) + "?"
        if self.chat_models:
            return "`voiceterm models` lists the chat models found on this machine"
        return "give the path of a .gguf file (no chat model was found on this machine)"


def discover(
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    models_dirs: list[Path] | None = None,
    *,
    system: bool = True,
) -> Catalog:
    """Search every place for GGUF models; reads headers only, downloads nothing.

    ``env``, ``home`` and ``models_dirs`` default to this process's; ``system=False``
    skips folders outside them (Ollama's Linux service keeps its models in /usr/share).
    """
    searched = places(
        os.environ if env is None else env,
        Path.home() if home is None else home,
        paths.models_dirs() if models_dirs is None else models_dirs,
        system=system,
    )
    found: list[FoundModel] = []
    seen: dict[Path, Source] = {}
    for place in searched:
        try:
            examined = [_examine(candidate) for candidate in candidates(place)]
        except OSError as error:  # a folder we may not read: say so, search the rest
            log.warning("cannot search %s: %s", place.path, error)
            continue
        for model in examined:
            if model is None:
                continue
            # The same file under two tools (LM Studio linked into the HF cache) is
            # listed once; under two names of one tool (Ollama's tags) it keeps both.
            real = model.path.resolve()
            if seen.setdefault(real, model.source) != model.source:
                continue
            found.append(model)
    return Catalog(_qualify_clashing_names(found), searched)


def _examine(candidate: Candidate) -> FoundModel | None:
    """The candidate as a found model; ``None`` for a later part of a split model."""
    path = candidate.path
    aliases = candidate.aliases
    if candidate.problem:
        return FoundModel(candidate.source, candidate.name, path, 0, aliases, candidate.problem)
    if not path.exists():
        return FoundModel(candidate.source, candidate.name, path, 0, aliases, "its link is broken")
    size = path.stat().st_size
    split = SPLIT_PART.search(path.name)
    if split is not None:
        part, count = int(split.group(1)), int(split.group(2))
        if part != 1:
            return None  # llama.cpp loads the others through part 1
        parts = [
            path.with_name(SPLIT_PART.sub(f"-{n:05d}-of-{count:05d}.gguf", path.name))
            for n in range(1, count + 1)
        ]
        missing = [p.name for p in parts if not p.exists()]
        if missing:
            problem = f"{len(missing)} of its {count} parts are missing ({missing[0]}, ...)"
            return FoundModel(candidate.source, candidate.name, path, size, aliases, problem)
        size = sum(p.stat().st_size for p in parts)
    if candidate.source != OLLAMA:
        stem = SPLIT_PART.sub("", path.name).removesuffix(".gguf")
        aliases += (stem,)
    try:
        header = read_gguf_header(path)
    except NotGguf as error:
        return FoundModel(candidate.source, candidate.name, path, size, aliases, str(error))
    reason = not_chat_reason(header)
    if reason is not None:
        reason += f" (architecture {header.architecture or 'not given'})"
    return FoundModel(candidate.source, candidate.name, path, size, aliases, reason or "")


def _qualify_clashing_names(models: list[FoundModel]) -> list[FoundModel]:
    """Prefix the tool (``hf:``, ``lmstudio:``) to names that two different files share."""
    counts: dict[str, int] = {}
    for model in models:
        counts[model.name] = counts.get(model.name, 0) + 1
    qualified = []
    for model in models:
        prefixed = f"{_SOURCE_KEYS[model.source]}:{model.name}"
        name = prefixed if counts[model.name] > 1 else model.name
        aliases = (*model.aliases, prefixed)
        qualified.append(
            FoundModel(model.source, name, model.path, model.size_bytes, aliases, model.unusable)
        )
    return qualified


def _matches(models: list[FoundModel], wanted: str) -> list[FoundModel]:
    """Models called ``wanted``: by name, then by another name, then ignoring case."""
    folded = wanted.casefold()
    for test in (
        lambda m: m.name == wanted,
        lambda m: wanted in m.aliases,
        lambda m: folded in {n.casefold() for n in (m.name, *m.aliases)},
    ):
        hits = [model for model in models if test(model)]
        if hits:
            return hits
    return []


def _close_names(models: list[FoundModel], wanted: str) -> list[str]:
    folded = wanted.casefold()
    by_folded: dict[str, str] = {}
    for model in models:
        for name in (model.name, *model.aliases):
            by_folded.setdefault(name.casefold(), model.name)
    close = [by_folded[n] for n in difflib.get_close_matches(folded, by_folded, n=5, cutoff=0.6)]
    close += [name for folded_name, name in by_folded.items() if folded in folded_name]
    return list(dict.fromkeys(close))[:5]


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1e9:.1f} GB" if size_bytes >= 1e9 else f"{size_bytes / 1e6:.0f} MB"
