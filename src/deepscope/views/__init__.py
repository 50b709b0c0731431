"""View kinds: one registry row per kind of analysis result, read by every surface.

Torch-free (stdlib and numpy): `schema` (TypedDicts as wire schemas, validation and
TypeScript generation), `envelope` (typed arrays as binary), `registry` (`ViewKind`,
`register`, `get`, `kinds`, `write`), `wire` (every route's schema), `kinds/` (built-ins;
``attribution`` is the worked example). See docs/design-notes.md, "Adding a view kind".
"""

from deepscope.views.registry import Part, ViewKind, get, kinds, register, write

__all__ = ["Part", "ViewKind", "get", "kinds", "register", "write"]
