r"""Paths into documents (engine spec §2.2): build, print, parse, resolve, read, write, encode.

A :class:`Path` is an immutable sequence of components; the empty path is the root. There are
seven components: :class:`Field`, :class:`Index`, :class:`MapKey`, :class:`Position` and
:class:`Unwrap` are *regular* (they may appear in an update); :class:`Entry` and
:class:`Element` are *irregular*: they address a value that is its own key (a map key, a set
element), which only :meth:`Path.at` and :meth:`Path.patch` accept.

Text form
---------
``str(path)`` prints, and :meth:`Path.parse` reads back, this grammar::

    path     := "."                            the root
              | step+
    step     := "." NAME                       field (NAME = [A-Za-z_][A-Za-z0-9_]*, except
              | "." STRING                       "entry" and "element"; other names are quoted)
              | "[" DIGITS "]"                 index (vector, tuple, vec, mat)
              | "[" "@" UUID "]"               xarray position
              | "[" LITERAL "]"                map key
              | "[" LITERAL "]" ".entry"       the map entry itself; then [0] key, [1] value
              | ".element" "[" DIGITS "]"      i-th element of a set in canonical order
              | "!"                            unwrap an optional, a variant or an any
    LITERAL  := STRING                         'text' or "text" (escapes: \\ \' \" \n \r \t
                                                 \0 \xHH \uHHHH \UHHHHHHHH)
              | "#" NUMBER                     integer (#3, #-1) or float (#1.5, #1e+16, #inf,
                                                 #-inf, #nan): a number key always has a "#"
              | "true" | "false" | "nil"
              | UUID                           {01234567-89ab-cdef-0123-456789abcdef}
              | "x" STRING                     bytes as hexadecimal: x'00ff'
              | "(" LITERAL ("," LITERAL)* [","] ")"    a tuple (spaces allowed inside)

so ``[3]`` is always an index and ``[#3]`` always an integer map key, ``[{uuid}]`` a uuid map
key and ``[@{uuid}]`` an xarray position. Examples: ``.topology.vertexKeys``,
``.scores['alice']``, ``.by_id[#42].name``, ``.maybe!``, ``.items[@{…}]``,
``.scores['alice'].entry[0]``, ``.tags.element[2]``, ``.'entry'`` (a field named entry).

``Path.parse(str(p)) == p`` for every path whose keys are strings, integers, floats, bools,
uuids, None, bytes or tuples of those. Other keys print in a form that normalizes back
(:meth:`Path.normalize`): an enumeration case as its name, a key as its instance uuid, a
structure as the tuple of its fields.

Values
------
Reads and writes follow the replay rules (engine spec §3.1-§3.2, §5.4): every failure is a
:class:`~commitdb.errors.PathError` (the replay records it and goes on). An unwrap (``!``)
checks that a value is present and keeps it as it is: the content of a variant or an ``any``
stays wrapped in its :class:`~commitdb.values.Typed` (the type :meth:`Path.resolve` gives
there is the variant, or ``any``), and the next step looks inside the wrapper.

The package, by role:

* :mod:`~commitdb.paths.components` — the seven components;
* :mod:`~commitdb.paths.text` and :mod:`~commitdb.paths.parser` — printing and reading
  the text form;
* :mod:`~commitdb.paths.order` — the canonical order of set elements;
* :mod:`~commitdb.paths.resolution` — resolution against a type;
* :mod:`~commitdb.paths.access` — reading and writing values;
* :mod:`~commitdb.paths.wire` — the wire form;
* :mod:`~commitdb.paths.path` — :class:`Path`, which gathers them.
"""

from __future__ import annotations

from commitdb.paths.components import (
    Component,
    Element,
    Entry,
    Field,
    Index,
    MapKey,
    Position,
    Unwrap,
)
from commitdb.paths.order import element_sort_key, sorted_elements
from commitdb.paths.path import Path

__all__ = (
    "Component",
    "Element",
    "Entry",
    "Field",
    "Index",
    "MapKey",
    "Path",
    "Position",
    "Unwrap",
    "element_sort_key",
    "sorted_elements",
)
