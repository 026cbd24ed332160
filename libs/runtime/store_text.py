"""The summaries `wolfpack gc` and `wolfpack fsck` print (without `-o json`)."""

from __future__ import annotations

from libs.common.store.collect import GcReport
from libs.common.store.fsck import FsckReport
from libs.common.terminal.sizes import human_bytes

# Digests listed one by one before "... and N more".
LISTED = 50


def gc_text(report: GcReport) -> str:
    verb = "would remove" if report.dry_run else "removed"
    lines = [
        f"{report.blobs_scanned} blobs scanned: {report.blobs_referenced} referenced, "
        f"{report.blobs_young} unreferenced but within the {report.grace_seconds:g} s grace, "
        f"{report.blobs_removed} {verb} ({human_bytes(report.bytes_freed)})",
        f"temporary files: {report.temps_removed} {verb} "
        f"({human_bytes(report.temp_bytes_freed)}), {report.temps_young} younger than the grace",
    ]
    if report.blobs_kept_late:
        lines.append(f"{report.blobs_kept_late} blobs kept: stored again while gc ran")
    if report.dry_run:
        lines += [f"  {verb} {digest}" for digest in report.removed[:LISTED]]
        if len(report.removed) > LISTED:
            lines.append(f"  ... and {len(report.removed) - LISTED} more")
        lines.append("dry run: nothing was removed")
    lines += [f"warning: {warning}" for warning in report.warnings]
    return "\n".join(lines)


def fsck_text(report: FsckReport) -> str:
    lines = [
        f"{report.blobs_checked} blobs ({human_bytes(report.bytes_checked)}) checked in "
        f"{report.seconds:.1f} s: {len(report.corrupt)} corrupt, {len(report.missing)} missing"
    ]
    for corrupt in report.corrupt:
        lines.append(f"  {corrupt.path}: {corrupt.problem}: {corrupt.detail}")
        if report.referrers_known:
            used = ", ".join(corrupt.referrers) or "nothing (gc will remove it)"
            lines.append(f"    referenced by: {used}")
        for remedy in corrupt.remedies:
            lines.append(f"    to make it again: {remedy}")
        if corrupt.quarantined:
            lines.append(f"    moved to {corrupt.quarantined}")
    for missing in report.missing:
        lines.append(f"  {missing.digest}: missing, referenced by {', '.join(missing.referrers)}")
        for remedy in missing.remedies:
            lines.append(f"    to make it again: {remedy}")
    if report.corrupt and not report.quarantined:
        then = (
            ", then the commands above (a blob still in the store is reused, not made again)"
            if any(corrupt.remedies for corrupt in report.corrupt)
            else ""
        )
        lines.append(
            f"run `wolfpack fsck --quarantine` to move corrupt files out of the store{then}"
        )
    lines += [f"warning: {warning}" for warning in report.warnings]
    return "\n".join(lines)
