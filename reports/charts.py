"""The report charts drawn on the server as PNG images with matplotlib's Agg canvas (no Django, no pyplot).

Each function takes counts already aggregated (reports.activity) and returns the PNG's bytes. Without data a
chart is an image that says so, never an error. Figures are built with the object API, not pyplot: pyplot keeps
global state that concurrent requests in one process would share.

A date is a column one day wide, from its midnight to the next: heat-map cells and bars sit on the same columns,
and a date's label sits under the middle of its column.
"""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from echoroo.formatting import duration_text

DPI = 100
WIDTH_IN = 11.0
# The pages' colours (static/echoroo/pages.css): ink, muted text, lines, accent.
INK, MUTED, LINE, ACCENT = "#1d2327", "#5f6b73", "#d9dee2", "#1f6fb2"
# Cells of a heat map when no recorder was running: grey, unlike a pale cell (running, nothing heard).
NOT_RECORDING = "#d4d8db"
HEAT = "YlGnBu"
EFFORT = "Greens"
PANEL_COLUMNS = 4


def figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def message(title: str, text: str) -> bytes:
    """An image that says there is nothing to draw, with the chart's title above."""
    fig = figure(2.2)
    fig.text(0.02, 0.86, title, fontsize=11, fontweight="bold", color=INK, va="top")
    fig.text(0.5, 0.42, text, fontsize=13, color=MUTED, ha="center", va="center")
    return png(fig)


def titles(fig: Figure, title: str, legend: str = "", *, left: float = 0.06, right: float = 0.94) -> None:
    """The chart's title at the top left, and what its marks mean at the top right."""
    top = 1 - 0.12 / fig.get_figheight()
    fig.text(left, top, title, fontsize=11, fontweight="bold", color=INK, va="top")
    if legend:
        fig.text(right, top, legend, fontsize=8, color=MUTED, va="top", ha="right")


def note_below(fig: Figure, note: str) -> None:
    """Which detections the chart shows, and what it leaves out, under it."""
    if note:
        fig.text(0.01, 0.06 / fig.get_figheight(), note, fontsize=8, color=MUTED, va="bottom")


def day_range(days) -> list[dt.date]:
    """Every date from the first to the last of `days`."""
    first, last = min(days), max(days)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def day_starts(days: list[dt.date]) -> np.ndarray:
    return date2num(days)


def day_edges(days: list[dt.date]) -> np.ndarray:
    """The edges of one column per date, as matplotlib date numbers."""
    return date2num([days[0] + dt.timedelta(days=i) for i in range(len(days) + 1)])


def date_axis(axes, days: list[dt.date], *, labels: int = 10, offset: bool = True) -> None:
    """Dates under the middle of their columns ("May 1"), every n-th day so that at most `labels` show; for a long
    season, matplotlib's own ticks (weeks, months)."""
    axes.set_xlim(day_edges(days)[0], day_edges(days)[-1])
    if len(days) <= 4 * labels:
        shown = days[:: math.ceil(len(days) / labels)]
        axes.set_xticks(day_starts(shown) + 0.5, [f"{day:%b} {day.day}" for day in shown])
        if offset:
            first, last = days[0].year, days[-1].year
            axes.set_xlabel(str(first) if first == last else f"{first}–{last}")
        return
    locator = AutoDateLocator(minticks=3, maxticks=labels)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=offset))
    axes.xaxis.get_offset_text().set(fontsize=8, color=MUTED)


def style_axes(axes) -> None:
    for spine in axes.spines.values():
        spine.set_color(LINE)
    axes.tick_params(colors=MUTED, labelsize=8)
    axes.xaxis.label.set(color=MUTED, fontsize=8)
    axes.yaxis.label.set(color=MUTED, fontsize=9)


def style_colorbar(bar, label: str) -> None:
    bar.set_label(label, color=MUTED, fontsize=9)
    bar.ax.tick_params(colors=MUTED, labelsize=8)
    bar.outline.set_edgecolor(LINE)


def colormap(name: str, *, bad: str) -> Colormap:
    """One of matplotlib's colour maps, with the colour of masked cells."""
    return colormaps[name].with_extremes(bad=bad)


def shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


# --- The charts ---------------------------------------------------------------------------------------------------


def activity_heatmap(
    counts: dict[tuple[dt.date, int], int],
    effort_s: dict[tuple[dt.date, int], float],
    *,
    title: str,
    zone: str,
    note: str = "",
) -> bytes:
    """Detections by hour of day (rows) and date (columns); grey where no recorder was running that hour."""
    days = day_range([day for day, _ in counts] + [day for day, _ in effort_s])
    column = {day: i for i, day in enumerate(days)}
    grid = np.zeros((24, len(days)))
    running = np.zeros((24, len(days)), dtype=bool)
    for (day, hour), seconds in effort_s.items():
        running[hour, column[day]] = seconds > 0
    for (day, hour), n in counts.items():
        grid[hour, column[day]] = n
        running[hour, column[day]] = True
    cells = np.ma.masked_array(grid, mask=~running)

    fig = figure(4.6)
    axes = fig.add_axes((0.06, 0.2, 0.82, 0.68))
    mesh = axes.pcolormesh(
        day_edges(days),
        np.arange(25),
        cells,
        cmap=colormap(HEAT, bad=NOT_RECORDING),
        vmin=0,
        vmax=max(1, grid.max()),
        shading="flat",
    )
    axes.set_ylim(0, 24)
    axes.set_yticks(range(0, 25, 3))
    axes.set_ylabel(f"hour of day ({zone})")
    date_axis(axes, days)
    style_axes(axes)
    bar = fig.colorbar(mesh, cax=fig.add_axes((0.9, 0.2, 0.015, 0.68)))
    style_colorbar(bar, "detections in the hour")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    titles(fig, title, "grey: no recorder running · pale: running, nothing detected", right=0.88)
    note_below(fig, note)
    return png(fig)


def phenology(counts: dict[dt.date, int], effort_s: dict[dt.date, float], *, title: str, note: str = "") -> bytes:
    """Detections per day across the season as bars, over the time recorded each day in grey."""
    days = day_range(list(counts) + list(effort_s))
    centres = day_starts(days) + 0.5
    detections = np.array([counts.get(day, 0) for day in days])
    recorded_s = np.array([effort_s.get(day, 0.0) for day in days])
    in_hours = recorded_s.max() >= 3600
    recorded = recorded_s / (3600 if in_hours else 60)

    fig = figure(3.8)
    axes = fig.add_axes((0.06, 0.22, 0.86, 0.64))
    behind = axes.twinx()
    behind.bar(centres, recorded, width=1.0, color=LINE, alpha=0.8, linewidth=0)
    behind.set_ylim(0, max(24.0 if in_hours else 1.0, recorded.max() * 1.05))
    behind.set_ylabel("hours recorded" if in_hours else "minutes recorded")
    axes.set_zorder(behind.get_zorder() + 1)
    axes.patch.set_visible(False)
    axes.bar(centres, detections, width=0.7 if len(days) > 3 else 0.4, color=ACCENT)
    axes.set_ylim(0, max(1, detections.max()) * 1.08)
    axes.set_ylabel("detections per day")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    date_axis(axes, days)
    style_axes(axes)
    style_axes(behind)
    titles(fig, title, "blue: detections · grey: time recorded", right=0.92)
    note_below(fig, note)
    return png(fig)


def species_panels(panels: list[tuple[str, int, dict]], *, grain: str, title: str, zone: str, note: str = "") -> bytes:
    """Small multiples, one panel per species (name, total, counts by hour of day or by date), side by side."""
    rows = math.ceil(len(panels) / PANEL_COLUMNS)
    height = 1.0 + 1.95 * rows
    fig = figure(height)
    grid = fig.add_gridspec(
        rows,
        PANEL_COLUMNS,
        left=0.05,
        right=0.99,
        top=1 - 0.62 / height,
        bottom=0.55 / height,
        hspace=0.65,
        wspace=0.22,
    )
    days = day_range([when for _, _, counts in panels for when in counts]) if grain == "day" else []
    for i, (name, total, counts) in enumerate(panels):
        axes = fig.add_subplot(grid[i // PANEL_COLUMNS, i % PANEL_COLUMNS])
        if grain == "hour":
            hours = np.arange(24)
            axes.bar(hours + 0.5, [counts.get(hour, 0) for hour in hours], width=0.85, color=ACCENT)
            axes.set_xlim(0, 24)
            axes.set_xticks(range(0, 25, 6))
        elif days:
            axes.bar(day_starts(days) + 0.5, [counts.get(day, 0) for day in days], width=0.8, color=ACCENT)
            date_axis(axes, days, labels=3, offset=False)
        axes.set_ylim(0, max(1, max(counts.values(), default=0)) * 1.1)
        axes.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
        axes.set_title(shorten(name, 26) + f" ({total:,})", loc="left", fontsize=9, fontweight="bold", color=INK)
        style_axes(axes)
    axis = f"hour of day ({zone})" if grain == "hour" else "date"
    titles(fig, title, f"detections by {axis}", left=0.05, right=0.99)
    note_below(fig, note)
    return png(fig)


def effort_by_site(sites: list[tuple[str, dict[dt.date, float]]], *, title: str, note: str = "") -> bytes:
    """One row per site, one column per date, shaded by the time its recorders ran that day."""
    days = day_range([day for _, by_day in sites for day in by_day])
    column = {day: i for i, day in enumerate(days)}
    grid = np.zeros((len(sites), len(days)))
    for row, (_, by_day) in enumerate(sites):
        for day, seconds in by_day.items():
            grid[row, column[day]] = seconds
    # Hours when a day holds an hour or more; else minutes, so that a short survey still shows.
    in_hours = grid.max() >= 3600
    unit = 3600 if in_hours else 60
    cells = np.ma.masked_less_equal(grid / unit, 0)

    height = min(2.2 + 0.32 * len(sites), 14.0)
    fig = figure(height)
    top, bottom = 1 - 0.55 / height, 0.75 / height
    axes = fig.add_axes((0.2, bottom, 0.68, top - bottom))
    edges = day_edges(days)
    vmax = 24 if in_hours else max(1.0, math.ceil(grid.max() / 60))
    mesh = axes.pcolormesh(
        edges, np.arange(len(sites) + 1), cells, cmap=colormap(EFFORT, bad="white"), vmin=0, vmax=vmax
    )
    totals = grid.sum(axis=1)
    labels = [shorten(name, 30) + f"  ({duration_text(total)})" for (name, _), total in zip(sites, totals, strict=True)]
    axes.set_yticks(np.arange(len(sites)) + 0.5, labels)
    axes.set_ylim(len(sites), 0)
    if len(sites) > 40:
        axes.tick_params(axis="y", labelsize=6)
    # A thin white line between sites, so that neighbouring rows of the same shade stay apart.
    axes.hlines(np.arange(1, len(sites)), edges[0], edges[-1], color="white", linewidth=1)
    date_axis(axes, days)
    style_axes(axes)
    axes.tick_params(axis="y", length=0)
    bar = fig.colorbar(mesh, cax=fig.add_axes((0.9, bottom, 0.012, top - bottom)))
    style_colorbar(bar, "hours recorded per day" if in_hours else "minutes recorded per day")
    if in_hours:
        bar.set_ticks([0, 6, 12, 18, 24])
    titles(fig, title, left=0.2)
    note_below(fig, note)
    return png(fig)
