"""What the live benchmark measures: series of seconds and the counts of each run."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.stats import percentile


def ms(value: float) -> str:
    return "   n/a" if value != value else f"{1000 * value:6.0f}"


@dataclass
class Series:
    """Seconds, one per trial."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def row(self, label: str, target: str = "") -> str:
        p50, p95 = percentile(self.values, 50), percentile(self.values, 95)
        return f"  {label:<44}{len(self.values):4d} {ms(p50)} {ms(p95)}   {target}"


@dataclass
class BargeInResult:
    min_speech_ms: int
    echo: str
    hold: str = "on"
    """barge_in.hold: on pauses the answer at the VAD's start and confirms later."""
    signal: Series = field(default_factory=Series)
    continuous: Series = field(default_factory=Series)
    """Only cuts of an answer that sounded without a pause from before the onset."""
    app: Series = field(default_factory=Series)
    trials: int = 0
    caught: int = 0
    not_talking: int = 0
    unheard: int = 0
    """Trials (barge-ins and coughs) not counted: this bench's recorder lost audio in
    them, and silence it made up would flatter the figures."""
    coughs: int = 0
    cough_cuts: int = 0
    cough_silences: Series = field(default_factory=Series)
    """The longest silence in the answer from 0.2 s before to 1.6 s after a cough."""


@dataclass
class EchoResult:
    mode: str
    answers: int = 0
    self_interruptions: int = 0
    phantom_turns: int = 0
    unanswered: int = 0
    runaways: int = 0
    """Times it answered its own voice on and on, and had to be restarted."""
    v2v: Series = field(default_factory=Series)
    barge: BargeInResult | None = None


@dataclass
class Report:
    calibration_ms: list[float] = field(default_factory=list)
    file_v2v: Series = field(default_factory=Series)
    """Each clip a fresh conversation, on the quiet machine before the rig starts."""
    file_fresh_beside_v2v: Series = field(default_factory=Series)
    """Each clip a fresh conversation, said right beside its live turn (same load)."""
    file_conversation_v2v: Series = field(default_factory=Series)
    """The same clips as one conversation from a file, history kept as in the live app."""
    paired_differences: Series = field(default_factory=Series)
    """live - file-based (one conversation), clip by clip."""
    live_v2v: Series = field(default_factory=Series)
    app_v2v: Series = field(default_factory=Series)
    unanswered: int = 0
    first_turn: float | None = None
    first_turn_app: str | None = None
    barge_ins: list[BargeInResult] = field(default_factory=list)
    echo: list[EchoResult] = field(default_factory=list)
    latencies: dict[str, float] = field(default_factory=dict)
    speaker_underflows: int = 0
    """The app's speaker underflows (clicks), summed over every app started."""
    speaker_stops: int = 0
    """The app's reports that the speaker stopped playing (a lost device, or one
    taken for lost), summed over every app started."""
    speaker_cut_answers: int = 0
    """Answers the app cut off because the speaker stopped (``speaker_lost``)."""
    apps: int = 0
    load: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    busy: int = 0
    """Busy programs (pure-Python spin loops) that ran beside everything."""
