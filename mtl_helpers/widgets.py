"""Interactive panels. Each notebook shows a static figure first (it reads on GitHub and under
nbval), then, "if you are running this live", a slider that calls a *tested* plotting function
on precomputed results, so it answers within a second."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
from IPython.display import display


def slider_panel(draw: Callable[..., object], **sliders: widgets.ValueWidget) -> widgets.VBox:
    """Wire ``draw(**values)`` to sliders; redraw into one output area on every change.

    >>> # slider_panel(draw_alpha, alpha=widgets.SelectionSlider(options=[0, 0.1, 1]))
    """
    if not sliders:
        raise ValueError("slider_panel needs at least one slider, e.g. alpha=widgets.FloatSlider().")
    for slider in sliders.values():  # show the whole label ("shared layers", not "shared la…")
        slider.style.description_width = "initial"
    out = widgets.interactive_output(draw, sliders)
    panel = widgets.VBox([*sliders.values(), out])
    display(panel)
    return panel
