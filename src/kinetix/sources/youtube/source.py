"""Clips from YouTube, one task per clip: yt-dlp fetches only the clip's section, ffmpeg trims it.

For each clip yt-dlp (as a library) looks the video up, picks a format, and with
``download_ranges`` hands ffmpeg the section from ``time_start`` to ``time_end + margin``:
ffmpeg seeks with HTTP Range requests to the keyframe at or before ``time_start`` and copies
from there, so a 10 s clip of a 10 min video costs its own seconds of bytes (plus the stretch
back to that keyframe), not ten minutes' worth. The section keeps the source's timestamps
(``-copyts``); ``process.trim`` cuts the clip from it (exact or fast) into a temporary file
next to its final place, which is then renamed over it.

Politeness: every try waits at one ``RequestGate`` (token bucket at ``config.rate``, Retry-After
pauses, circuit breaker). The download job hands out single tries (``try_once``) from its one
process, asking the gate before each and re-queueing transient failures through it
(``settle``), so the limits hold for a whole cluster, retries included; ``run`` does every try
of one clip in this process. Failures become stable reasons (``errors.py``); transient
ones are tried again, up to ``max_attempts``.
Cookies and proxy credentials never reach a log line, a message or the manifest.
"""

from __future__ import annotations

import contextvars
import errno
import functools
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinetix.catalog.releases import Release
from kinetix.config import DownloadConfig, SourceKind, YoutubeConfig
from kinetix.durable import fsync_dir, fsync_file, sha256_file
from kinetix.errors import ErrorCode, FFmpegError, SourceError
from kinetix.executors import Again, Executor, LocalExecutor, TaskKind, run_tasks
from kinetix.executors.orphans import guard_ytdlp_tools
from kinetix.executors.preflight import AV_TOOL, YT_DLP_TOOL
from kinetix.interrupts import StopToken
from kinetix.process.ffmpeg import FFMPEG_TOOL, find_ffmpeg
from kinetix.process.probe import looks_like_media
from kinetix.process.trim import SectionInfo, TrimmedClip, read_section, trim_clip
from kinetix.process.verify import inspect_clip
from kinetix.progress import Progress
from kinetix.sources.base import ClipSpan, TaskResult
from kinetix.sources.job import (
    DownloadJob,
    DownloadReport,
    apply_result,
    cluster_executor,
    landing_spec,
    needs_work,
    placed,
)
from kinetix.sources.ratelimit import Outcome, RequestGate, shared_gate
from kinetix.sources.redaction import Redactor, cookie_secrets, path_secrets, proxy_secrets
from kinetix.sources.youtube.cookies import load_cookies
from kinetix.sources.youtube.errors import Failure, YtdlpLog, classify
from kinetix.sources.youtube.formats import FormatPicker
from kinetix.sources.youtube.readiness import DENO_TOOL, _deno_path
from kinetix.store.layout import LabelStyle, clip_relpath, partial_dir
from kinetix.store.manifest import ClipState, ClipUpdate, Manifest
from kinetix.store.rows import WorkRow
from kinetix.transfer.extract import describe_head

if TYPE_CHECKING:
    from kinetix.process.landing import LandingSpec

log = logging.getLogger(__name__)

SOURCE_NAME = "youtube"
# A stream copy ends on a decode-order boundary: frames just before the section's end may be
# missing (B-frame reordering). Fetching this much past time_end keeps them out of the clip.
MIN_TAIL = 0.5
ADVICE = (
    "Cookies from a signed-in browser (--cookies FILE or --cookies-from-browser BROWSER) or "
    "another network (--proxy URL) usually help; --rate lowers the request rate"
)
_MEDIA_EXTS = ("mp4", "m4v", "mkv", "webm", "mov")


@dataclass(frozen=True)
class YoutubeTask:
    """One clip to fetch: everything a worker needs, picklable."""

    release: str
    split: str
    key: str
    youtube_id: str
    time_start: float
    time_end: float
    label: str | None
    relpath: str  # where the clip goes, relative to the root


@dataclass(frozen=True)
class YoutubeTry:
    """One try at a clip as it is handed to a worker: which try (from 0), and the bytes the
    tries before it fetched (they count towards the clip's transfer)."""

    task: YoutubeTask
    attempt: int = 0
    fetched: int = 0

    @property
    def key(self) -> str:  # how messages name the task
        return self.task.key


@dataclass(frozen=True)
class TryOutcome:
    """What one try came to: the clip's manifest fields, or why it failed; the bytes it fetched."""

    attempt: YoutubeTry
    fields: dict[str, Any] | None = None
    failure: Failure | None = None
    size: int = 0


@functools.lru_cache(maxsize=1)
def _mirror_file_ie() -> Any:
    """An extractor for direct media URLs (a mirror's ``youtube/{id}.mp4``) that only sends HEAD.

    yt-dlp's generic extractor GETs the whole file to sniff it and drops the connection after
    the headers: on a fast link the server has pushed megabytes by then. A HEAD answers the
    same questions (exists? 404? 429 with Retry-After?) for no body bytes.
    """
    from yt_dlp.extractor.common import InfoExtractor
    from yt_dlp.networking.common import HEADRequest
    from yt_dlp.utils import determine_ext, int_or_none

    class KinetixMirrorFileIE(InfoExtractor):
        IE_NAME = "kinetix:mirror-file"
        _VALID_URL = (
            r"https?://(?!(?:[\w-]+\.)?(?:youtube\.com|youtu\.be)/)[^?#]+\.(?:"
            + "|".join(_MEDIA_EXTS)
            + r")(?:[?#].*)?$"
        )

        def _real_extract(self, url: str) -> dict[str, Any]:
            video_id = self._generic_id(url)
            response = self._request_webpage(
                HEADRequest(url),
                video_id,
                note="Checking the file",
                errnote="Unable to reach the file",
            )
            ext = determine_ext(url)
            return {
                "id": video_id,
                "title": video_id,
                "direct": True,
                "formats": [
                    {
                        "format_id": ext,
                        "url": url,
                        "ext": ext,
                        "filesize": int_or_none(response.headers.get("Content-Length")),
                    }
                ],
            }

    return KinetixMirrorFileIE


class YoutubeSource:
    """The YouTube clip source: ``plan`` makes one task per clip, ``run`` fetches and trims it.

    The class itself is the download job's ``Source`` (``sources/base.py``): ``wants`` picks the
    rows, ``fetch`` makes the instance for the run and runs its tries through the job's gate.
    """

    name = SOURCE_NAME

    @classmethod
    def serves(cls, release: Release) -> bool:
        return True

    @classmethod
    def wants(cls, row: WorkRow, config: DownloadConfig) -> bool:
        # under --source auto, what CVDF could not give (a gap, a broken copy) too
        return needs_work(row, config.retry_failed, cvdf_gaps=config.source is SourceKind.AUTO)

    @classmethod
    def pending(cls, manifest: Manifest, release: Release, split: str) -> bool:
        return False

    @classmethod
    def fetch(cls, job: DownloadJob, rows: Sequence[WorkRow]) -> None:
        run_youtube(job.config, job.manifest, rows, job.report, job.emit, stop=job.stop)

    def __init__(
        self,
        root: str | os.PathLike[str],
        config: YoutubeConfig,
        layout: LabelStyle = LabelStyle.RAW,
        *,
        gate: RequestGate | None = None,
        landing: LandingSpec | None = None,
    ):
        self.root = Path(root)
        self.config = config
        self.layout = LabelStyle(layout)
        self.landing = landing  # fused processing: what each trimmed clip becomes
        self._gate = gate
        self._gate_given = gate is not None
        jar = load_cookies(config)  # fails here, in the parent, on a bad cookies setting
        self.redact = Redactor(
            [*cookie_secrets(jar), *path_secrets(config.cookies), *proxy_secrets(config.proxy)]
        )

    # Pools of processes pickle the source; locks and jars stay behind and are made again.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if not self._gate_given:
            state["_gate"] = None
        return state

    @property
    def gate(self) -> RequestGate:
        if self._gate is None:
            self._gate = shared_gate(SOURCE_NAME, self.config.rate, advice=ADVICE)
        return self._gate

    def plan(self, rows: Sequence[ClipSpan]) -> list[YoutubeTask]:
        """One task per clip, in the order given; a killed run's leftovers are removed first."""
        tasks = [
            YoutubeTask(
                release=r.release,
                split=r.split,
                key=r.key,
                youtube_id=r.youtube_id,
                time_start=float(r.time_start),
                time_end=float(r.time_end),
                label=r.label,
                relpath=clip_relpath(r.split, r.label, r.key, self.layout),
            )
            for r in rows
        ]
        self._remove_leftovers(tasks)
        return tasks

    def _remove_leftovers(self, tasks: Sequence[YoutubeTask]) -> None:
        """Sections and half-written clips of a run that was killed before it could clean up.

        The download job plans while it holds the root's lock, so no other run owns them.
        """
        shutil.rmtree(partial_dir(self.root) / SOURCE_NAME, ignore_errors=True)
        for folder in {(self.root / t.relpath).parent for t in tasks}:
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                name = entry.name
                if name.startswith(".") and name.endswith(".part") and ".mp4." in name:
                    Path(entry.path).unlink(missing_ok=True)

    def run(self, task: YoutubeTask) -> TaskResult:
        """Fetch and trim one clip, trying transient failures again; never raises for them.

        Every try waits at this process's gate first (threads of one pool share it). A run on a
        cluster dispatches ``try_once`` from one process instead, pacing every try there.
        """
        attempt = YoutubeTry(task)
        while True:
            self.gate.acquire()
            verdict = self.settle(self.try_once(attempt))
            if isinstance(verdict, TaskResult):
                return verdict
            self.gate.clock.sleep(verdict.after)
            attempt = verdict.task

    def try_once(self, attempt: YoutubeTry) -> TryOutcome:
        """One try at a clip, in a worker, without waiting: its request was metered by whoever
        handed it out. Expected failures come back classified, never raised."""
        try:
            fields, size = self._attempt(attempt.task)
        except _Fetched as exc:
            return TryOutcome(attempt, failure=exc.failure, size=exc.bytes_fetched)
        except (SourceError, FFmpegError) as exc:
            return TryOutcome(attempt, failure=classify(exc, self.redact))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise  # permissions, a vanished root: a setup problem, not a clip's
            failure = Failure(ErrorCode.NO_SPACE, f"no space left: {exc.strerror}")
            return TryOutcome(attempt, failure=failure)
        return TryOutcome(attempt, fields=fields, size=size)

    def settle(self, outcome: TryOutcome) -> TaskResult | Again[YoutubeTry]:
        """What a try means, decided where requests are metered: the gate's breaker hears how
        it went; then the clip's result, or its next try and the wait before it. A server's
        Retry-After also pauses the gate, so no try of any clip goes out before it ends."""
        attempt, failure = outcome.attempt, outcome.failure
        task = attempt.task
        fetched = attempt.fetched + outcome.size
        if failure is None:
            self.gate.record(Outcome.OK)
            assert outcome.fields is not None
            return TaskResult(
                updates=[self._update(task, outcome.fields)], bytes_transferred=fetched
            )
        self.gate.record(Outcome.THROTTLED if failure.throttling else Outcome.OK)
        tries = attempt.attempt + 1
        last = tries >= self.config.max_attempts
        if failure.retryable and failure.code is not ErrorCode.NO_SPACE and not last:
            delay = self.gate.retry_delay(
                attempt.attempt, throttled=failure.slow_down, retry_after=failure.retry_after
            )
            log.info(
                "%s: %s (%s); try %d of %d in %.1fs",
                task.key, failure.code.value, failure.message, tries + 1,
                self.config.max_attempts, delay,
            )  # fmt: skip
            if failure.retry_after is not None:
                self.gate.pause(delay)
            return Again(YoutubeTry(task, tries, fetched), after=delay)
        message = failure.message
        if tries > 1:
            message = f"{message} (after {tries} tries)"
        fields = {
            "state": ClipState.FAILED.value,
            "source": SOURCE_NAME,
            "error_code": failure.code.value,
            "error_message": message,
        }
        return TaskResult(updates=[self._update(task, fields)], bytes_transferred=fetched)

    def _update(self, task: YoutubeTask, fields: dict[str, Any]) -> ClipUpdate:
        return ClipUpdate(task.release, task.split, task.key, fields, count_attempt=True)

    # -- one try ---------------------------------------------------------------------------------

    def _attempt(self, task: YoutubeTask) -> tuple[dict[str, Any], int]:
        """Fetch the section, trim it into place; the manifest fields and the bytes fetched."""
        work = partial_dir(self.root) / SOURCE_NAME / f"{task.key}.{_worker_tag()}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            section, duration = self._fetch_section(task, work)
            size = section.stat().st_size
            try:
                info = read_section(section)
                self._check_section(task, info, duration)
                clip, checked, path, landed = self._trim_into_place(task, section, info, work)
            except SourceError as exc:
                raise _Fetched(classify(exc, self.redact), size) from exc
            except FFmpegError as exc:
                raise _Fetched(classify(exc, self.redact), size) from exc
            if landed is not None:
                return landed, size
            digest, nbytes = sha256_file(path), path.stat().st_size
            fields = {
                "state": ClipState.PRESENT.value,
                "source": SOURCE_NAME,
                "path": task.relpath,
                "bytes": nbytes,
                "sha256": digest,
                "mtime": path.stat().st_mtime,
                **clip.manifest_fields(),
                **checked,  # verify good, and the facts as a player (and `verify`) sees them
            }
            return fields, size
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _land(self, task: YoutubeTask, clip: TrimmedClip, path: Path) -> dict[str, Any]:
        """Fused processing: make the root's output from the checked clip at ``path``.

        The trimmed clip then moves to ``ROOT/originals/`` (``--keep-originals``) or is gone.
        """
        from kinetix.process.landing import derive_landed, landed_fields, place

        spec = self.landing
        assert spec is not None
        update, staged = derive_landed(
            spec, task.release, task.split, task.key, task.relpath, path, self.root
        )
        if update.fields.get("state") != ClipState.PRESENT.value:
            raise SourceError(
                f"making the clip's output failed: {update.fields.get('error_message')}",
                code=ErrorCode(update.fields.get("error_code") or ErrorCode.FFMPEG_FAILED.value),
            )
        out_rel = spec.output_relpath(task.relpath)
        origin: Path | None = None
        if spec.keep_originals:
            origin = spec.originals(self.root) / task.relpath
            origin.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, origin)
        else:
            path.unlink(missing_ok=True)
        place(staged, self.root / out_rel)
        fields = landed_fields(update, origin)
        fields.update(
            source=SOURCE_NAME, path=out_rel, trim=clip.mode.value,
            start_offset=round(clip.start_offset, 6),
        )  # fmt: skip
        return fields

    def section_bounds(self, task: YoutubeTask) -> tuple[float, float]:
        """The span of the source to fetch.

        It starts at ``time_start`` itself: ffmpeg's seek lands on the keyframe at or before
        it, which is all either trim needs, so fetching earlier would only buy a longer
        preroll. It ends ``margin`` seconds (at least ``MIN_TAIL``) after ``time_end``.
        """
        return task.time_start, task.time_end + max(self.config.margin, MIN_TAIL)

    def _ytdlp_params(
        self, work: Path, picker: FormatPicker, span: tuple[float, float]
    ) -> dict[str, Any]:
        from yt_dlp.utils import download_range_func

        params: dict[str, Any] = {
            "logger": YtdlpLog(self.redact),
            "quiet": True,
            "noprogress": True,
            "color": {"stdout": "no_color", "stderr": "no_color"},
            "consoletitle": False,
            "noplaylist": True,
            "format": picker,
            "download_ranges": download_range_func(None, [span]),
            "outtmpl": {"default": str(work / "section.%(ext)s")},
            "overwrites": True,
            "fixup": "never",  # the trim writes the final file; no extra ffmpeg passes
            "ffmpeg_location": find_ffmpeg().path,
            # -copyts: the section keeps the source's timestamps, so the trim needs no
            # guessing about where ffmpeg's seek landed; -xerror: a connection that breaks
            # mid-section fails the download instead of leaving a silently short file.
            "external_downloader_args": {"ffmpeg_i": picker.ffmpeg_args},
            # Every retry goes through our gate and backoff, so yt-dlp must not retry alone.
            "retries": 0,
            "extractor_retries": 0,
            "fragment_retries": 0,
            "file_access_retries": 0,
            "socket_timeout": 30,
        }
        if self.config.proxy:
            params["proxy"] = self.config.proxy
        deno = _deno_path()
        if deno:
            params["js_runtimes"] = {"deno": {"path": deno}}
        return params

    def _new_ytdlp(self, params: dict[str, Any], url: str) -> Any:
        from yt_dlp import YoutubeDL

        guard_ytdlp_tools()  # its ffmpeg in a group of its own, dying with its worker
        # auto_init=False: our mirror-file extractor must be asked before the generic one.
        ydl = YoutubeDL(params, auto_init=False)
        mirror_ie = _mirror_file_ie()
        ydl.add_info_extractor(mirror_ie())
        if not mirror_ie.suitable(url):
            # Registering yt-dlp's ~1800 extractors costs ~0.1 s of CPU under the GIL: worth
            # it for YouTube (whose lookup takes longer anyway), not for a mirror's file.
            ydl.add_default_info_extractors()
        jar = load_cookies(self.config)
        if jar is not None:
            for cookie in jar:
                ydl.cookiejar.set_cookie(cookie)
        return ydl

    def _fetch_section(self, task: YoutubeTask, work: Path) -> tuple[Path, float | None]:
        """Download the clip's section with yt-dlp; returns its path and the video's duration."""
        from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor
        from yt_dlp.utils import YoutubeDLError

        url = self.config.url_template.format(youtube_id=task.youtube_id)
        start, end = self.section_bounds(task)
        picker = FormatPicker(self.config, end - start, ["-xerror", "-copyts"])
        params = self._ytdlp_params(work, picker, (start, end))

        def fetch() -> tuple[Path, float | None]:
            # yt-dlp decides whether ffmpeg exists through this context variable (its CLI sets
            # it); worker threads start with a fresh context, so it is set here, in a copy.
            FFmpegPostProcessor._ffmpeg_location.set(find_ffmpeg().path)
            with self._new_ytdlp(params, url) as ydl:
                try:
                    raw = ydl.extract_info(url, download=False, process=False)
                except YoutubeDLError as exc:
                    raise _Fetched(classify(exc, self.redact), 0) from exc
                duration = raw.get("duration") if isinstance(raw, dict) else None
                # YouTube reports whole seconds: only a start a second past it is surely out.
                if duration is not None and task.time_start >= duration + 1:
                    raise _Fetched(
                        Failure(
                            ErrorCode.TOO_SHORT,
                            f"the video lasts {duration:g} s; the clip starts at "
                            f"{task.time_start:g} s",
                        ),
                        0,
                    )
                try:
                    info = ydl.process_ie_result(raw, download=True)
                except YoutubeDLError as exc:
                    raise _Fetched(self._diagnose(ydl, picker, exc), _partial_bytes(work)) from exc
                return _section_file(work, info), duration

        return contextvars.copy_context().run(fetch)

    def _diagnose(self, ydl: Any, picker: FormatPicker, exc: BaseException) -> Failure:
        """Why the section download failed.

        yt-dlp runs ffmpeg without capturing its output, so a refused or broken range request
        only says "ffmpeg exited with code N". One HEAD request for each chosen format asks
        the server itself (429 with Retry-After, 403, 404), without a body.
        """
        first = classify(exc, self.redact)
        if first.code not in (ErrorCode.FFMPEG_FAILED, ErrorCode.UNKNOWN) or not picker.chosen:
            return first
        from yt_dlp.networking.common import HEADRequest
        from yt_dlp.utils import YoutubeDLError

        for fmt in picker.chosen:
            headers = fmt.get("http_headers") or {}
            try:
                ydl.urlopen(HEADRequest(fmt["url"], headers=headers)).close()
                sent = _sniff_non_media(ydl, fmt["url"], headers)
            except (YoutubeDLError, OSError) as head_exc:
                found = classify(head_exc, self.redact)
                if found.code is ErrorCode.UNKNOWN:
                    found = Failure(ErrorCode.NETWORK, found.message)
                return Failure(
                    found.code,
                    f"the section download failed ({first.message}); the server answers: "
                    f"{found.message}",
                    retry_after=found.retry_after,
                    bot_check=found.bot_check,
                )
            if sent is not None:
                # Not the service refusing us and not worth another try: the URL serves
                # something else (an error page, junk). The breaker must not count it.
                return Failure(
                    ErrorCode.NOT_VIDEO,
                    f"not a video: the server sent {sent} ({first.message})",
                )
        return Failure(
            ErrorCode.NETWORK,
            f"the connection broke while fetching the clip's section ({first.message})",
        )

    def _check_section(self, task: YoutubeTask, info: SectionInfo, duration: float | None) -> None:
        """A section must begin by the clip's start and not stop short of its end."""
        if not info.frame_times:
            return  # trim_clip says why (no frames at all, or a video ending before the start)
        if info.frame_times[0] > task.time_start + 1.5 * info.step:
            raise SourceError(
                f"the fetched section starts at {info.frame_times[0]:.3f} s, after the clip's "
                f"start at {task.time_start:g} s (the seek missed its keyframe)",
                code=ErrorCode.FFMPEG_FAILED,
            )
        if duration is None:
            return  # ffmpeg -xerror already fails a transfer that breaks off
        expected_end = min(task.time_end, float(duration))
        # YouTube reports whole seconds; a second of slack covers the rounding.
        if task.time_start < duration and info.end + 1.0 < expected_end:
            raise SourceError(
                f"the fetched section ends at {info.end:.2f} s, short of {expected_end:g} s",
                code=ErrorCode.NETWORK,
            )

    def _trim_into_place(
        self, task: YoutubeTask, section: Path, info: SectionInfo, work: Path
    ) -> tuple[TrimmedClip, dict[str, Any], Path, dict[str, Any] | None]:
        """Trim into a temp name, check it, rename it into place; with fused processing its
        output is made and placed instead (the last item: that output's row fields)."""
        dest = self.root / task.relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Same folder as the clip, so the rename is atomic; dot-named so no lister takes it
        # for a clip. The key may start with "-": ffmpeg gets it behind "file:".
        tmp = dest.with_name(f".{dest.name}.{_worker_tag()}.part")
        try:
            clip = trim_clip(
                section, tmp, task.time_start, task.time_end, self.config.trim,
                audio=self.config.audio, info=info,
            )  # fmt: skip
            fsync_file(tmp)
            # checked like `verify` before it is placed: a recorded clip is a usable one
            checked = inspect_clip(tmp, task.time_end - task.time_start, clip.start_offset)
            if checked["verify"] != "good":
                raise SourceError(
                    f"the trimmed clip is unusable: {checked['error_message']}",
                    code=ErrorCode(checked["error_code"]),
                )
            if self.landing is not None:
                return clip, checked, dest, self._land(task, clip, tmp)
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return clip, checked, dest, None


class _Fetched(Exception):
    """A try failed after ``bytes_fetched`` bytes; carries the classified failure."""

    def __init__(self, failure: Failure, bytes_fetched: int):
        super().__init__(failure.message)
        self.failure = failure
        self.bytes_fetched = bytes_fetched


SNIFF_BYTES = 4096


def _sniff_non_media(ydl: Any, url: str, headers: dict[str, str]) -> str | None:
    """What ``url`` serves instead of media (an HTML page, junk), or None if it is media.

    One ranged GET of the first ``SNIFF_BYTES``; a server that ignores Range is read no
    further than that either. A failing request says nothing about the body: None.
    """
    from yt_dlp.networking.common import Request
    from yt_dlp.utils import YoutubeDLError

    try:
        response = ydl.urlopen(
            Request(url, headers={**headers, "Range": f"bytes=0-{SNIFF_BYTES - 1}"})
        )
        try:
            head = response.read(SNIFF_BYTES)
            content_type = response.headers.get("Content-Type") or ""
        finally:
            response.close()
    except (YoutubeDLError, OSError):
        return None
    if looks_like_media(head):
        return None
    what = describe_head(head, expected="the video")
    if content_type:
        what = f"{what}; Content-Type {content_type}"
    return what


def _worker_tag() -> str:
    """Unique among the workers of every process sharing a root."""
    return f"{os.getpid()}.{threading.get_ident()}"


def _section_file(work: Path, info: Any) -> Path:
    for download in (info or {}).get("requested_downloads") or []:
        path = download.get("filepath")
        if path and Path(path).is_file():
            return Path(path)
    found = [p for p in work.glob("section.*") if p.suffix not in (".part", ".ytdl", ".temp")]
    if not found:
        raise SourceError("yt-dlp reported success but wrote no section", code=ErrorCode.NETWORK)
    return found[0]


def _partial_bytes(work: Path) -> int:
    return sum(p.stat().st_size for p in work.glob("section.*") if p.is_file())


def run_youtube(
    config: DownloadConfig,
    manifest: Manifest,
    rows: Sequence[WorkRow],
    report: DownloadReport,
    emit: Callable[[str], None] | None,
    *,
    stop: StopToken | None = None,
) -> None:
    stop = stop or StopToken()
    landing = landing_spec(config)
    if landing is not None:
        from kinetix.process.landing import clear_stage

        clear_stage(config.root)
    source = YoutubeSource(config.root, config.youtube, config.layout, landing=landing)
    tasks = source.plan(rows)
    progress = Progress(
        "youtube",
        total_clips=len(tasks),
        bars=None if config.progress else False,
        emit=emit if config.progress else None,
    )
    executor: Executor
    if config.executor.is_local:
        executor = LocalExecutor(config.parallel, io_workers=config.parallel)
    else:
        executor = cluster_executor(config, tools=(FFMPEG_TOOL, AV_TOOL, YT_DLP_TOOL, DENO_TOOL))

    def record(outcome: TryOutcome) -> Again[YoutubeTry] | None:
        verdict = source.settle(outcome)
        if isinstance(verdict, Again):
            return None if stop.is_set() else verdict  # stopped: the clip stays to do
        result = verdict
        if stop.is_set():  # a clip that failed now may have failed from the stop itself
            result = replace(result, updates=[u for u in result.updates if placed(u)])
        apply_result(manifest, result, report)
        ok = sum(placed(u) for u in result.updates)
        progress.add_clips(ok, failed=len(result.updates) - ok)
        return None

    # One try per dispatch, every one (retries too) through this process's gate: --rate,
    # Retry-After pauses and the breaker hold for all workers together, and at most --workers
    # clips are out at once, wherever they run.
    try:
        with stop.running():
            run_tasks(
                (YoutubeTry(t) for t in tasks), source.try_once, executor, on_result=record,
                kind=TaskKind.IO, pace=source.gate.reserve, in_flight=config.parallel, stop=stop,
            )  # fmt: skip
    finally:
        executor.close()
        progress.close()
    stop.raise_if_signalled()
