"""OData V4 query syntax as Business Central accepts it: $filter compiled to predicates, $select, key predicates.

Records are lists in the service's field order; a compiled filter is ``predicate(row) -> bool``.
Supported: eq ne lt le gt ge, and/or/not, parentheses, ``in (...)``, startswith/endswith/contains,
tolower/toupper/length/trim; literals: 'strings' (a quote doubled inside), numbers, true/false, null,
bare dates 2026-11-01, datetimes 2026-11-01T10:00:00Z, GUIDs, enum literals (NAV.Type'Inventory').
Types are checked the way the OData library BC uses does: comparing an Edm.Date field with a string
or a datetime literal is an error, not a silent mismatch. ``or`` across different fields is rejected
(BC's documented limitation). A FlowFilter (``Location_Filter`` on ItemCard) narrows no record: it sets
what the record's FlowFields sum, so ``compile_query`` hands it back apart, as a predicate over one value.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional

from .schema import EDM, Service


class ODataSyntaxError(ValueError):
    """A malformed query: BC answers 400 BadRequest_NotFound "Bad Request - Error in query syntax."."""


class ODataQueryError(ValueError):
    """A well-formed query BC refuses (unknown property, incompatible types, unsupported construct)."""

    def __init__(self, message: str, code: str = "BadRequest"):
        super().__init__(message)
        self.code = code


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})?)
    | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
    | (?P<num>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?(?![\w.]))
    | (?P<typed>[A-Za-z_][\w.]*'(?:[^']|'')*')
    | (?P<name>[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}
BOOL_FUNCS = {"startswith", "endswith", "contains"}
VALUE_FUNCS = {"tolower", "toupper", "trim", "length"}


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ODataSyntaxError(f"unexpected character at position {pos} in {text!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def unquote(literal: str) -> str:
    return literal[1:-1].replace("''", "'")


def quote(value: str) -> str:
    """A string as an OData literal: single-quoted, a quote inside doubled."""
    return "'" + value.replace("'", "''") + "'"


def normalize_datetime(text: str) -> str:
    """A datetime literal as the sandbox stores DateTimeOffset values: UTC, milliseconds, 'Z'."""
    raw = text.replace("Z", "+00:00")
    if re.search(r"T\d{2}:\d{2}$|T\d{2}:\d{2}[+-]", raw):
        raw = raw[:16] + ":00" + raw[16:]
    if "." in raw:  # Python wants at most 6 fraction digits
        head, rest = raw.split(".", 1)
        m = re.match(r"(\d+)(.*)", rest)
        raw = f"{head}.{m.group(1)[:6].ljust(6, '0')}{m.group(2)}"
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ODataSyntaxError(str(exc)) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def literal(kind: str, text: str) -> tuple[str, Any]:
    """(literal type, Python value) for a literal token."""
    if kind == "str":
        return "str", unquote(text)
    if kind == "typed":
        return "str", unquote(text[text.index("'"):])
    if kind == "guid":
        return "guid", text.lower()
    if kind == "date":
        try:
            datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            raise ODataSyntaxError(f"invalid date {text!r}") from None
        return "date", text
    if kind == "datetime":
        return "datetime", normalize_datetime(text)
    if kind == "num":
        body = text.rstrip("mMdDfFlL")
        if re.fullmatch(r"[+-]?\d+", body):
            return "num", int(body)
        return "num", float(body)
    if kind == "name":
        low = text.lower()
        if low in ("true", "false"):
            return "bool", low == "true"
        if low == "null":
            return "null", None
    raise ODataSyntaxError(f"not a literal: {text!r}")


class _Parser:
    """Recursive descent over the tokens; builds a small tuple AST."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[Optional[str], Optional[str]]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else (None, None)

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] is None:
            raise ODataSyntaxError(f"unexpected end of expression {self.text!r}")
        self.pos += 1
        return tok  # type: ignore[return-value]

    def expect(self, value: str) -> None:
        kind, text = self.take()
        if text != value:
            raise ODataSyntaxError(f"expected {value!r}, found {text!r}")

    def keyword(self, *words: str) -> Optional[str]:
        kind, text = self.peek()
        if kind == "name" and text in words:
            self.pos += 1
            return text
        return None

    def parse(self):
        if not self.tokens:
            raise ODataSyntaxError("empty $filter")
        node = self.or_expr()
        if self.pos != len(self.tokens):
            raise ODataSyntaxError(f"unexpected {self.peek()[1]!r}")
        return node

    def or_expr(self):
        node = self.and_expr()
        while self.keyword("or"):
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self):
        node = self.unary()
        while self.keyword("and"):
            node = ("and", node, self.unary())
        return node

    def unary(self):
        if self.keyword("not"):
            return ("not", self.unary())
        return self.comparison()

    def comparison(self):
        left = self.operand()
        kind, text = self.peek()
        if kind == "name" and text in COMPARISONS:
            self.pos += 1
            return ("cmp", text, left, self.operand())
        if kind == "name" and text == "in":
            self.pos += 1
            self.expect("(")
            items = [self.operand()]
            while self.peek()[1] == ",":
                self.pos += 1
                items.append(self.operand())
            self.expect(")")
            return ("in", left, items)
        return ("bool", left)

    def operand(self):
        kind, text = self.take()
        if text == "(":
            node = self.or_expr()
            self.expect(")")
            return node
        if kind == "name":
            low = text.lower()
            if low in ("true", "false", "null"):
                return ("lit",) + literal(kind, text)
            if self.peek()[1] == "(" and (low in BOOL_FUNCS or low in VALUE_FUNCS):
                self.pos += 1
                args = [self.operand()]
                while self.peek()[1] == ",":
                    self.pos += 1
                    args.append(self.operand())
                self.expect(")")
                return ("call", low, args)
            if text in COMPARISONS or text in ("and", "or", "not", "in"):
                raise ODataSyntaxError(f"unexpected operator {text!r}")
            return ("field", text)
        if kind in ("str", "typed", "guid", "date", "datetime", "num"):
            return ("lit",) + literal(kind, text)
        raise ODataSyntaxError(f"unexpected {text!r}")


def parse_filter(text: str):
    """The AST of a $filter expression; ODataSyntaxError when it is malformed."""
    return _Parser(text).parse()


# --- compilation -------------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}
_OP_NAMES = {"eq": "Equal", "ne": "NotEqual", "lt": "LessThan", "le": "LessThanOrEqual", "gt": "GreaterThan",
             "ge": "GreaterThanOrEqual"}
_LIT_EDM = {"str": "Edm.String", "num": "Edm.Decimal", "bool": "Edm.Boolean", "date": "Edm.Date",
            "datetime": "Edm.DateTimeOffset", "guid": "Edm.Guid", "null": "null"}
# which literal types each field type accepts
_COMPATIBLE = {"str": {"str"}, "enum": {"str"}, "dec": {"num"}, "int": {"num"}, "bool": {"bool"},
               "date": {"date"}, "datetime": {"datetime"}}


# a FlowFilter's type where it is not Code/Text
FLOW_FILTER_TYPES = {"Date_Filter": "date"}


class _Compiler:
    def __init__(self, service: Service):
        self.service = service

    def field_ref(self, name: str) -> tuple[int, str]:
        if name not in self.service.index:
            raise ODataQueryError(f"Could not find a property named '{name}' on type 'NAV.{self.service.name}'.",
                                  "BadRequest_NotFound")
        return self.service.index[name], self.service.types[name]

    def fields_of(self, node) -> set[str]:
        tag = node[0]
        if tag == "field":
            return {node[1]}
        if tag == "lit":
            return set()
        if tag in ("and", "or"):
            return self.fields_of(node[1]) | self.fields_of(node[2])
        if tag in ("not", "bool"):
            return self.fields_of(node[1])
        if tag == "cmp":
            return self.fields_of(node[2]) | self.fields_of(node[3])
        if tag == "in":
            return self.fields_of(node[1]).union(*(self.fields_of(n) for n in node[2]))
        if tag == "call":
            return set().union(*(self.fields_of(n) for n in node[2]))
        return set()

    def value(self, node) -> tuple[Callable[[list], Any], str]:
        """A getter and its type (a field type, or 'lit:<type>' for a constant)."""
        tag = node[0]
        if tag == "field":
            idx, ftype = self.field_ref(node[1])
            return (lambda row, i=idx: row[i]), ftype
        if tag == "lit":
            v = node[2]
            return (lambda row, v=v: v), "lit:" + node[1]
        if tag == "call" and node[1] in VALUE_FUNCS:
            args = node[2]
            if len(args) != 1:
                raise ODataQueryError(f"The function '{node[1]}' takes one argument.")
            get, t = self.value(args[0])
            if t not in ("str", "enum", "lit:str"):
                raise ODataQueryError(f"No function signature for the function with name '{node[1]}' matches "
                                      f"the specified arguments.")
            fn = {"tolower": str.lower, "toupper": str.upper, "trim": str.strip, "length": len}[node[1]]
            return (lambda row, g=get, f=fn: f(g(row))), ("int" if node[1] == "length" else "str")
        raise ODataSyntaxError("Bad Request - Error in query syntax.")

    def compile(self, node) -> Callable[[list], bool]:
        tag = node[0]
        if tag == "and":
            a, b = self.compile(node[1]), self.compile(node[2])
            return lambda row: a(row) and b(row)
        if tag == "or":
            names = self.fields_of(node)
            if len(names) > 1:
                raise ODataQueryError("The 'or' operator is only supported between conditions on the same field "
                                      f"(found {', '.join(sorted(names))}); Business Central cannot filter "
                                      "different fields with 'or'.", "BadRequest_MethodNotImplemented")
            a, b = self.compile(node[1]), self.compile(node[2])
            return lambda row: a(row) or b(row)
        if tag == "not":
            a = self.compile(node[1])
            return lambda row: not a(row)
        if tag == "cmp":
            return self.comparison(node[1], node[2], node[3])
        if tag == "in":
            get, t = self.value(node[1])
            values = []
            for item in node[2]:
                if item[0] != "lit":
                    raise ODataQueryError("The 'in' operator takes a list of literals.")
                values.append(self.coerce(t, item[1], item[2], "In", node[1]))
            allowed = frozenset(values)
            return lambda row: get(row) in allowed
        if tag == "bool":
            inner = node[1]
            if inner[0] == "call" and inner[1] in BOOL_FUNCS:
                return self.string_function(inner[1], inner[2])
            if inner[0] in ("and", "or", "not", "cmp", "in", "bool"):
                return self.compile(inner)
            get, t = self.value(inner)
            if t not in ("bool", "lit:bool"):
                raise ODataQueryError("The $filter expression must evaluate to a single boolean value.")
            return lambda row: bool(get(row))
        raise ODataSyntaxError("Bad Request - Error in query syntax.")

    def coerce(self, ftype: str, ltype: str, value: Any, op_name: str, field_node) -> Any:
        if ltype == "null":
            return None
        if ltype not in _COMPATIBLE.get(ftype, {ftype}):
            edm = EDM.get(ftype, ftype)
            raise ODataQueryError("A binary operator with incompatible types was detected. Found operand types "
                                  f"'{edm}' and '{_LIT_EDM.get(ltype, ltype)}' for operator kind '{op_name}'.",
                                  "BadRequest")
        return value

    def comparison(self, op: str, left, right) -> Callable[[list], bool]:
        lget, lt = self.value(left)
        rget, rt = self.value(right)
        fn = _OPS[op]
        if lt.startswith("lit:") and not rt.startswith("lit:"):  # 'x' eq Field: swap
            flipped = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}.get(op, op)
            return self.comparison(flipped, right, left)
        if lt.startswith("lit:") and rt.startswith("lit:"):
            result = bool(fn(lget(None), rget(None))) if lt == rt else False
            return lambda row: result
        if not rt.startswith("lit:"):
            raise ODataQueryError("Comparing two fields is not supported by Business Central filters.")
        ltype = rt[4:]
        const = self.coerce(lt, ltype, rget(None), _OP_NAMES[op], left)
        if const is None:  # BC fields are never null
            return (lambda row: False) if op != "ne" else (lambda row: True)
        if left[0] == "field":
            i = self.service.index[left[1]]
            if op == "eq":
                return lambda row: row[i] == const
            if op == "ne":
                return lambda row: row[i] != const
            return lambda row: fn(row[i], const)
        return lambda row: fn(lget(row), const)

    def string_function(self, name: str, args) -> Callable[[list], bool]:
        if len(args) != 2:
            raise ODataQueryError(f"The function '{name}' takes two arguments.")
        get, t = self.value(args[0])
        if t not in ("str", "enum"):
            raise ODataQueryError(f"No function signature for the function with name '{name}' matches the "
                                  f"specified arguments. The function argument types are "
                                  f"'{EDM.get(t, t)}, Edm.String'.")
        if args[1][0] != "lit" or args[1][1] != "str":
            raise ODataQueryError(f"The second argument of '{name}' must be a string literal.")
        needle = args[1][2]
        if name == "startswith":
            return lambda row: get(row).startswith(needle)
        if name == "endswith":
            return lambda row: get(row).endswith(needle)
        return lambda row: needle in get(row)


def compile_filter(text: Optional[str], service: Service) -> Optional[Callable[[list], bool]]:
    """A predicate over rows for a $filter, or None when there is no filter (FlowFilters narrow nothing)."""
    return compile_query(text, service)[0]


def compile_query(text: Optional[str], service: Service
                  ) -> tuple[Optional[Callable[[list], bool]], dict[str, Callable[[Any], bool]]]:
    """The $filter's predicate over rows, and its FlowFilters: name -> predicate over the value a FlowField sums.

    BC turns each FlowFilter into a filter on the field it names (`Location_Filter eq 'EAST' or
    Location_Filter eq 'WEST'` is EAST|WEST), so one may only be joined to the rest of the filter by `and`.
    """
    if text is None or not text.strip():
        return None, {}
    compiler = _Compiler(service)
    flow_names = set(service.flow_filters)
    row_terms: list[Callable[[list], bool]] = []
    flows: dict[str, list[Callable[[list], bool]]] = {}
    for term in _conjuncts(parse_filter(text)):
        names = compiler.fields_of(term)
        flow = names & flow_names
        if not flow:
            row_terms.append(compiler.compile(term))
            continue
        if len(names) > 1:
            raise ODataQueryError(f"The FlowFilter '{sorted(flow)[0]}' can only be combined with the rest of the "
                                  "filter by 'and'.", "BadRequest_MethodNotImplemented")
        name = flow.pop()
        flows.setdefault(name, []).append(_Compiler(_flow_service(service, name)).compile(term))
    return _all(row_terms), {name: (lambda value, p=_all(preds): p([value])) for name, preds in flows.items()}


def _conjuncts(node) -> Iterator:
    if node[0] == "and":
        yield from _conjuncts(node[1])
        yield from _conjuncts(node[2])
    else:
        yield node


def _all(predicates: list[Callable[[list], bool]]) -> Optional[Callable[[list], bool]]:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda row: all(p(row) for p in predicates)


def _flow_service(service: Service, name: str) -> Service:
    """The FlowFilter as the one field of a record, so the usual compiler checks its literals."""
    ftype = FLOW_FILTER_TYPES.get(name, "str")
    return Service(service.name, service.object_type, service.object_id, service.table, (), [name], {name: ftype},
                   [""])


def parse_select(text: Optional[str], service: Service) -> Optional[tuple[str, ...]]:
    """The selected fields in page order (None: all); unknown names raise ODataQueryError."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise ODataSyntaxError("empty name in $select")
    if "*" in names:
        return None
    for n in names:
        if not re.fullmatch(r"[A-Za-z_]\w*", n):
            raise ODataSyntaxError(f"invalid name in $select: {n!r}")
        if n not in service.index:
            raise ODataQueryError(f"Could not find a property named '{n}' on type 'NAV.{service.name}'.",
                                  "BadRequest_NotFound")
    wanted = set(names)
    return tuple(f for f in service.fields if f in wanted)


def parse_orderby(text: Optional[str], service: Service) -> list[tuple[int, bool]]:
    """[(field index, descending)] for $orderby."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        bits = part.split()
        if not bits or len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
            raise ODataSyntaxError(f"invalid $orderby {text!r}")
        if bits[0] not in service.index:
            raise ODataQueryError(f"Could not find a property named '{bits[0]}' on type 'NAV.{service.name}'.",
                                  "BadRequest_NotFound")
        out.append((service.index[bits[0]], len(bits) == 2 and bits[1].lower() == "desc"))
    return out


def parse_key_segment(inner: str, service: Service) -> tuple:
    """The key tuple inside Service(...): positional for a single key, Name=value pairs otherwise."""
    parts = _split_top(inner)
    values: dict[str, tuple[str, Any]] = {}
    keys = service.keys
    if not keys:
        raise ODataQueryError(f"The query '{service.name}' has no key; single records cannot be addressed.")
    if len(parts) == 1 and "=" not in _outside_quotes(parts[0]):
        if len(keys) != 1:
            raise ODataQueryError(f"The key of '{service.name}' has {len(keys)} parts: {', '.join(keys)}.")
        values[keys[0]] = _one_literal(parts[0])
    else:
        for part in parts:
            eq = _outside_quotes(part).find("=")
            if eq < 0:
                raise ODataSyntaxError("malformed key predicate")
            name, lit = part[:eq].strip(), part[eq + 1:]
            if name not in keys:
                raise ODataQueryError(f"'{name}' is not a key of '{service.name}' (keys: {', '.join(keys)}).")
            values[name] = _one_literal(lit)
    return _key_tuple(values, service)


def _outside_quotes(text: str) -> str:
    """The text with quoted literals blanked, so '=' and ',' inside them are not seen."""
    return re.sub(r"'(?:[^']|'')*'", lambda m: " " * len(m.group(0)), text)


def _split_top(text: str) -> list[str]:
    masked = _outside_quotes(text)
    parts, start = [], 0
    for i, ch in enumerate(masked):
        if ch == ",":
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _one_literal(text: str) -> tuple[str, Any]:
    tokens = tokenize(text.strip())
    if len(tokens) != 1:
        raise ODataSyntaxError(f"malformed key value {text!r}")
    return literal(*tokens[0])


def _key_tuple(values: dict[str, tuple[str, Any]], service: Service) -> tuple:
    missing = [k for k in service.keys if k not in values]
    if missing:
        raise ODataQueryError(f"The key of '{service.name}' needs {', '.join(missing)}.")
    out = []
    for k in service.keys:
        ltype, v = values[k]
        ftype = service.types[k]
        if ftype in ("str", "enum") and ltype == "str":
            out.append(v)
        elif ftype == "int" and ltype == "num" and isinstance(v, int):
            out.append(v)
        else:
            raise ODataQueryError(f"The key value for '{k}' has the wrong type; expected {EDM[ftype]}.")
    return tuple(out)
