"""deepscope in notebooks: results as interactive widgets, a run's dashboard inline.

`show(obj)` displays any result that has a view kind (`AttributionResult`, `Activations`,
`UnitStats`, graphs, and every kind registered in `deepscope.views`) as an anywidget built
from the dashboard's own panel components (``pip install 'deepscope[notebook]'``), with a
PNG/HTML fallback for nbconvert and plain IPython; `show(logdir)` / ``run.show()`` embeds
the dashboard of a run (see `deepscope.notebook.show`).
"""

from deepscope.notebook.show import show

__all__ = ["show"]
