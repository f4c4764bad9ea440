"""symbols.py and languages.py against real grammars: one realistic snippet per language.

Each snippet's definitions are asserted exactly as (qualified_name, kind, start_line, end_line,
def_line); signatures and docs are checked where a language has something of its own to get right.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
from pathlib import Path

import pytest

from assistant.index import languages, symbols
from assistant.index.signatures import MAX_SIGNATURE
from assistant.index.symbols import Symbol, extract_symbols

Row = tuple[str, str, int, int, int]


def rows(source: str, language: str) -> list[Row]:
    return [
        (s.qualified_name, s.kind, s.start_line, s.end_line, s.def_line)
        for s in extract_symbols(source.encode(), language)
    ]


def by_name(source: str, language: str) -> dict[str, Symbol]:
    return {s.qualified_name: s for s in extract_symbols(source.encode(), language)}


@pytest.fixture
def fresh_languages(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Grammars and queries loaded anew, and again after the test undoes its patches."""
    languages.reload()
    yield monkeypatch
    monkeypatch.undo()
    languages.reload()


# --- snippets -----------------------------------------------------------------------------------

PYTHON = '''\
"""Module docstring."""
import functools

MAX_RETRIES = 3
TIMEOUT: float = 2.5
default_headers = {}


@functools.total_ordering
@dataclass(frozen=True)
class Session(BaseSession):
    """Keeps cookies.

    And connection pools.
    """

    RETRY = 1

    def get(self, url,
            **kwargs):  # keep in sync with post
        """Send a GET request."""
        def prepare():
            return url
        return self.request("GET", prepare())

    @property
    async def closed(self) -> bool:
        return False

    class Adapter:
        def send(self, request):
            pass


async def fetch(url: str) -> bytes:
    r\'\'\'Fetch one URL.\'\'\'
    return b""
'''

JAVASCRIPT = """\
/**
 * Adds two numbers.
 * @param {number} a
 */
export function add(a, b) {
  return a + b;
}

// Greets people.
@sealed
class Greeter extends Base {
  constructor(name) {
    super();
    this.name = name;
  }

  // Says hello.
  hello() {
    return `hi ${this.name}`;
  }

  static create = () => new Greeter("x");
}

function* ids() {
  yield 1;
}

const double = (x) => x * 2;
let parse = function (text) {
  return JSON.parse(text);
};
exports.format = function (value) {
  return String(value);
};
module.exports.render = (tpl) => tpl;

const api = {
  get: async (path) => fetch(path),
  remove(path) {
    return path;
  },
};
"""

TYPESCRIPT = """\
/** Something with an area. */
export interface Shape {
  area(): number;
  readonly name: string;
}

export type Id = string | number;

export enum Color {
  Red,
  Green,
}

export abstract class Base<T> implements Shape {
  abstract area(): number;
  readonly name = "base";

  protected clamp = (value: T): T => value;

  describe(prefix: string): string {
    return prefix + this.name;
  }
}

export const handler = async (event: Event): Promise<void> => {
  console.log(event);
};

declare function greet(name: string): void;

declare module "config" {
  export function load(path: string): Config;
}

namespace Geometry {
  export function distance(a: Point, b: Point): number {
    return 0;
  }
}
"""

DTS = """\
export declare class Client {
  constructor(url: string);
  request(method: string, path: string): Promise<Response>;
}
export declare function connect(url: string): Client;
export interface Options {
  timeout?: number;
  retry(attempt: number): boolean;
}
"""

TSX = """\
type Props = { title: string };

export function Header({ title }: Props) {
  return <h1>{title}</h1>;
}

export const Footer = () => <footer />;
"""

GO = """\
package gin

// MaxMemory is the default multipart limit.
const MaxMemory = 32 << 20

const (
	// MIMEJSON is JSON.
	MIMEJSON = "application/json"
	MIMEHTML = "text/html"
)

var ErrNotFound = errors.New("not found")

// Context carries a request through the handlers.
type Context struct {
	Keys map[string]any
}

// HandlerFunc handles a request.
type HandlerFunc func(*Context)

type (
	// Renderer renders a response.
	Renderer interface {
		Render(w io.Writer) error
	}
)

// JSON serializes obj as JSON
// into the response body.
func (c *Context) JSON(code int, obj any) {
	c.Render(code, render.JSON{Data: obj})
}

func (p Pair[K, V]) Key() K { return p.k }

func New() *Engine {
	return &Engine{}
}
"""

RUST = """\
use std::fmt;

/// A point in the plane.
#[derive(Debug, Clone)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

pub enum Shape {
    Circle(f64),
}

/// Things with an area.
pub trait Area {
    fn area(&self) -> f64;

    fn double(&self) -> f64 {
        self.area() * 2.0
    }
}

impl Point {
    pub const ORIGIN: Point = Point { x: 0.0, y: 0.0 };

    /// Makes a point.
    #[inline]
    pub fn new(x: f64, y: f64) -> Self {
        Point { x, y }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

macro_rules! square {
    ($x:expr) => {
        $x * $x
    };
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

mod tests {
    #[test]
    fn adds() {}
}
"""

JAVA = """\
package com.example.store;

/**
 * A repository of items.
 */
@Repository
public class ItemRepository<T> extends Base implements Store<T> {
    private final Map<String, T> items = new HashMap<>();

    public ItemRepository() {
        super();
    }

    /** Finds one item. */
    @Override
    public T find(String id) throws NotFoundException {
        return items.get(id);
    }

    interface Listener {
        void changed(T item);
    }

    enum State {
        OPEN, CLOSED;

        boolean isOpen() { return this == OPEN; }
    }

    record Entry(String id, T value) {}
}
"""

C = """\
#include <stdlib.h>

#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define BUFFER_SIZE 4096

/* A singly linked node. */
struct node {
    int value;
    struct node *next;
};

typedef struct {
    double x, y;
} point_t;

typedef int (*compare_fn)(const void *, const void *);

enum color { RED, GREEN };

// Sums a list.
// Returns 0 for an empty one.
static int
list_sum(const struct node *head)
{
    int total = 0;
    return total;
}

char **split_lines(const char *text) { return NULL; }

int declared_only(int x);
"""

CPP = """\
#include <string>

namespace geo {

/// A shape with an area.
template <typename T>
class Shape : public Base {
 public:
  Shape() = default;
  explicit Shape(T size) : size_(size) {}
  ~Shape() {}

  T area() const { return size_ * size_; }
  void draw(Canvas& canvas);

  struct Style {
    int width;
  };

 private:
  T size_;
};

}  // namespace geo

// Draws the outline.
void geo::Shape::draw(Canvas& canvas) {
  canvas.line(0, 0);
}

std::string& Registry::name() { return name_; }

int main() { return 0; }
"""

C_SHARP = """\
using System;

namespace Shop.Orders
{
    /// <summary>An order line.</summary>
    public record Line(string Sku, decimal Price);

    /// <summary>
    /// An order.
    /// </summary>
    [Serializable]
    public class Order : Entity, IOrder
    {
        public Order(int id) { Id = id; }

        public int Id { get; private set; }

        // Sum of all lines.
        public decimal Total() => Lines.Sum(l => l.Price);

        public interface IVisitor
        {
            void Visit(Order order);
        }

        public struct Totals { public decimal Net; }

        public enum Status { Open, Closed }
    }
}
"""

C_SHARP_FILE_SCOPED = """\
namespace Shop.Cart;

public class Cart
{
    public void Add(string sku) { }
}
"""

RUBY = """\
# Billing helpers.
module Billing
  # An invoice with lines.
  class Invoice < Base
    attr_reader :total

    def initialize(total)
      @total = total
    end

    # Builds from a hash.
    def self.build(attrs)
      new(attrs[:total])
    end

    class << self
      def registry; end
    end
  end
end

def helper(a, b)
  a + b
end
"""

PHP = """\
<?php
namespace App\\Models;

/**
 * Formats a display name.
 */
function format_name(string $first, string $last): string
{
    return "$first $last";
}

#[Entity]
class User extends Model implements HasName
{
    use Greets;

    // The display name.
    public function name(): string
    {
        return format_name($this->first, $this->last);
    }
}

interface HasName
{
    public function name(): string;
}

trait Greets
{
    public function greet(): string { return "hi"; }
}
"""

BASH = """\
#!/usr/bin/env bash
# Prints usage and exits.
usage() {
  echo "usage: $0 [-v]"
  exit 1
}

function main {
  usage
}

main "$@"
"""


# --- languages.py -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("src/app.py", "python"),
        ("typings/stub.pyi", "python"),
        ("web/main.js", "javascript"),
        ("web/esm.mjs", "javascript"),
        ("web/common.cjs", "javascript"),
        ("web/App.jsx", "javascript"),
        ("web/index.ts", "typescript"),
        ("web/index.mts", "typescript"),
        ("web/index.cts", "typescript"),
        ("types/node.d.ts", "typescript"),
        ("web/App.tsx", "tsx"),
        ("cmd/main.go", "go"),
        ("src/lib.rs", "rust"),
        ("src/Main.java", "java"),
        ("src/list.c", "c"),
        ("include/list.h", "c"),
        ("src/a.cc", "cpp"),
        ("src/a.cpp", "cpp"),
        ("src/a.cxx", "cpp"),
        ("include/a.hpp", "cpp"),
        ("include/a.hh", "cpp"),
        ("include/a.hxx", "cpp"),
        ("src/Order.cs", "c_sharp"),
        ("lib/billing.rb", "ruby"),
        ("src/User.php", "php"),
        ("bin/run.sh", "bash"),
        ("bin/run.bash", "bash"),
        ("SRC/MAIN.PY", "python"),
        ("Makefile", None),
        ("README.md", None),
        ("notes.txt", None),
        (".bashrc", None),
    ],
)
def test_language_for_path(path: str, language: str | None) -> None:
    assert languages.language_for_path(path) == language


def test_supported_languages_all_load() -> None:
    names = languages.supported_languages()
    assert names == sorted(names)
    assert set(names) == {
        "bash", "c", "c_sharp", "cpp", "go", "java", "javascript", "php", "python", "ruby",
        "rust", "tsx", "typescript",
    }  # fmt: skip
    for name in names:
        assert languages.grammar(name) is not None, name
        assert languages.tags_query(name) is not None, name


def test_queries_only_use_known_kinds() -> None:
    for name in languages.supported_languages():
        query = languages.tags_query(name)
        assert query is not None
        captures = {query.capture_name(i) for i in range(query.capture_count)}
        kinds = {c.removeprefix("definition.") for c in captures if c.startswith("definition.")}
        assert kinds, name
        assert kinds <= symbols.KINDS, (name, kinds - symbols.KINDS)
        assert "name" in captures, name


# --- one snippet per language -------------------------------------------------------------------


def test_python() -> None:
    assert rows(PYTHON, "python") == [
        ("MAX_RETRIES", "constant", 4, 4, 4),
        ("TIMEOUT", "constant", 5, 5, 5),
        ("Session", "class", 9, 32, 11),
        ("Session.get", "method", 19, 24, 19),
        ("Session.get.prepare", "function", 22, 23, 22),
        ("Session.closed", "method", 26, 28, 27),
        ("Session.Adapter", "class", 30, 32, 30),
        ("Session.Adapter.send", "method", 31, 32, 31),
        ("fetch", "function", 35, 37, 35),
    ]
    found = by_name(PYTHON, "python")
    session = found["Session"]
    assert session.signature == "class Session(BaseSession)"
    assert session.doc == "Keeps cookies.\n\nAnd connection pools."
    assert session.parent is None
    get = found["Session.get"]
    # multi-line parameters collapse; the trailing comment is not part of the header
    assert get.signature == "def get(self, url, **kwargs)"
    assert get.doc == "Send a GET request."
    assert (get.name, get.parent) == ("get", "Session")
    assert found["Session.get.prepare"].parent == "Session.get"
    assert found["Session.closed"].signature == "async def closed(self) -> bool"
    assert found["Session.closed"].doc == ""
    assert found["fetch"].doc == "Fetch one URL."
    assert found["TIMEOUT"].signature == "TIMEOUT: float = 2.5"


def test_python_decorated_definitions_start_at_the_first_decorator() -> None:
    source = "@app.route('/')\n@login_required\ndef index():\n    return 'hi'\n"
    [index] = extract_symbols(source.encode(), "python")
    assert (index.start_line, index.def_line, index.end_line) == (1, 3, 4)
    assert index.signature == "def index()"


def test_python_deeply_nested_classes() -> None:
    source = (
        "class A:\n"
        "    class B:\n"
        "        class C:\n"
        "            def m(self):\n"
        "                def helper():\n"
        "                    pass\n"
    )
    assert rows(source, "python") == [
        ("A", "class", 1, 6, 1),
        ("A.B", "class", 2, 6, 2),
        ("A.B.C", "class", 3, 6, 3),
        ("A.B.C.m", "method", 4, 6, 4),
        ("A.B.C.m.helper", "function", 5, 6, 5),
    ]


def test_javascript() -> None:
    assert rows(JAVASCRIPT, "javascript") == [
        ("add", "function", 1, 7, 5),
        ("Greeter", "class", 9, 23, 11),
        ("Greeter.constructor", "method", 12, 15, 12),
        ("Greeter.hello", "method", 17, 20, 18),
        ("Greeter.create", "method", 22, 22, 22),
        ("ids", "function", 25, 27, 25),
        ("double", "function", 29, 29, 29),
        ("parse", "function", 30, 32, 30),
        ("format", "function", 33, 35, 33),
        ("render", "function", 36, 36, 36),
        ("get", "function", 39, 39, 39),
        ("remove", "method", 40, 42, 40),
    ]
    found = by_name(JAVASCRIPT, "javascript")
    assert found["add"].signature == "export function add(a, b)"
    assert found["add"].doc == "Adds two numbers.\n@param {number} a"
    assert found["Greeter"].doc == "Greets people."
    assert found["Greeter.hello"].doc == "Says hello."
    assert found["double"].signature == "const double = (x) =>"
    assert found["format"].signature == "exports.format = function (value)"
    assert found["render"].signature == "module.exports.render = (tpl) =>"


EXPRESS_STYLE = """var res = Object.create(http.ServerResponse.prototype);

/**
 * Send a response.
 */
res.send = function send(body) {
  [1, 2].forEach(function each(x) {});
  return this;
};

res.json = async (obj) => {
  return obj;
};

module.exports = function createApplication() {
  return 1;
};

function Router() {}
Router.prototype.route = function (path) {
  return path;
};
module.exports = function () {};
"""


@pytest.mark.parametrize("language", ["javascript", "typescript", "tsx"])
def test_every_javascript_definition_form_is_a_symbol(language: str) -> None:
    """The Express idioms (issue 19): a property, prototype or `module.exports` assignment of
    a function is a definition, named after its owner; a callback passed as an argument and
    an anonymous `module.exports` function are not."""
    assert rows(EXPRESS_STYLE, language) == [
        ("res.send", "method", 3, 9, 6),
        ("res.json", "method", 11, 13, 11),
        ("createApplication", "function", 15, 17, 15),
        ("Router", "function", 19, 19, 19),
        ("Router.route", "method", 20, 22, 20),
    ]
    found = by_name(EXPRESS_STYLE, language)
    assert found["res.send"].doc == "Send a response."
    assert found["res.send"].parent == "res"
    assert found["res.send"].signature == "res.send = function send(body)"


def test_typescript() -> None:
    assert rows(TYPESCRIPT, "typescript") == [
        ("Shape", "interface", 1, 5, 2),
        ("Shape.area", "method", 3, 3, 3),
        ("Id", "type", 7, 7, 7),
        ("Color", "enum", 9, 12, 9),
        ("Base", "class", 14, 23, 14),
        ("Base.area", "method", 15, 15, 15),
        ("Base.clamp", "method", 18, 18, 18),
        ("Base.describe", "method", 20, 22, 20),
        ("handler", "function", 25, 27, 25),
        ("greet", "function", 29, 29, 29),
        ("config", "module", 31, 33, 31),
        ("config.load", "function", 32, 32, 32),
        ("Geometry", "namespace", 35, 39, 35),
        ("Geometry.distance", "function", 36, 38, 36),
    ]
    found = by_name(TYPESCRIPT, "typescript")
    assert found["Shape"].signature == "export interface Shape"
    assert found["Shape"].doc == "Something with an area."
    assert found["Shape.area"].signature == "area(): number"
    assert found["Id"].signature == "export type Id = string | number"
    assert found["Base"].signature == "export abstract class Base<T> implements Shape"
    assert found["Base.clamp"].signature == "protected clamp = (value: T): T =>"
    assert found["handler"].signature == (
        "export const handler = async (event: Event): Promise<void> =>"
    )
    assert found["greet"].signature == "declare function greet(name: string): void"


def test_typescript_declaration_file() -> None:
    assert rows(DTS, "typescript") == [
        ("Client", "class", 1, 4, 1),
        ("Client.constructor", "method", 2, 2, 2),
        ("Client.request", "method", 3, 3, 3),
        ("connect", "function", 5, 5, 5),
        ("Options", "interface", 6, 9, 6),
        ("Options.retry", "method", 8, 8, 8),
    ]
    found = by_name(DTS, "typescript")
    assert found["Client.request"].signature == (
        "request(method: string, path: string): Promise<Response>"
    )
    assert found["connect"].signature == "export declare function connect(url: string): Client"


def test_tsx_reuses_the_typescript_query() -> None:
    assert rows(TSX, "tsx") == [
        ("Props", "type", 1, 1, 1),
        ("Header", "function", 3, 5, 3),
        ("Footer", "function", 7, 7, 7),
    ]
    assert by_name(TSX, "tsx")["Header"].signature == "export function Header({ title }: Props)"


def test_go() -> None:
    assert rows(GO, "go") == [
        ("MaxMemory", "constant", 3, 4, 4),
        ("MIMEJSON", "constant", 7, 8, 8),
        ("MIMEHTML", "constant", 9, 9, 9),
        ("ErrNotFound", "constant", 12, 12, 12),
        ("Context", "struct", 14, 17, 15),
        ("HandlerFunc", "type", 19, 20, 20),
        ("Renderer", "interface", 23, 26, 24),
        ("Context.JSON", "method", 29, 33, 31),
        ("Pair.Key", "method", 35, 35, 35),
        ("New", "function", 37, 39, 37),
    ]
    found = by_name(GO, "go")
    json = found["Context.JSON"]
    assert json.signature == "func (c *Context) JSON(code int, obj any)"
    assert json.doc == "JSON serializes obj as JSON\ninto the response body."
    assert (json.name, json.parent) == ("JSON", "Context")
    assert found["Pair.Key"].parent == "Pair"  # type arguments dropped from the receiver
    assert found["Context"].signature == "type Context struct"
    assert found["Context"].doc == "Context carries a request through the handlers."
    assert found["Renderer"].signature == "Renderer interface"
    assert found["MaxMemory"].signature == "const MaxMemory = 32 << 20"
    assert found["MIMEJSON"].doc == "MIMEJSON is JSON."


def test_go_spec_with_several_names() -> None:
    source = "package x\n\nconst a, b = 1, 2\n\nvar (\n\tx, y int\n)\n"
    assert rows(source, "go") == [
        ("a", "constant", 3, 3, 3),
        ("b", "constant", 3, 3, 3),
        ("x", "constant", 6, 6, 6),
        ("y", "constant", 6, 6, 6),
    ]


def test_rust() -> None:
    assert rows(RUST, "rust") == [
        ("Point", "struct", 3, 8, 5),
        ("Shape", "enum", 10, 12, 10),
        ("Area", "trait", 14, 21, 15),
        ("Area.area", "method", 16, 16, 16),
        ("Area.double", "method", 18, 20, 18),
        ("Point", "impl", 23, 31, 23),
        ("Point.ORIGIN", "constant", 24, 24, 24),
        ("Point.new", "method", 26, 30, 28),
        ("Point", "impl", 33, 37, 33),
        ("Point.fmt", "method", 34, 36, 34),
        ("Result", "type", 39, 39, 39),
        ("square", "macro", 41, 45, 41),
        ("COUNTER", "constant", 47, 47, 47),
        ("tests", "module", 49, 52, 49),
        ("tests.adds", "function", 50, 51, 51),
    ]
    found = by_name(RUST, "rust")
    [point] = [s for s in extract_symbols(RUST.encode(), "rust") if s.kind == "struct"]
    assert point.doc == "A point in the plane."  # after the attribute's line
    assert point.signature == "pub struct Point"
    assert found["Point.new"].signature == "pub fn new(x: f64, y: f64) -> Self"
    assert found["Point.new"].doc == "Makes a point."
    assert found["Point.fmt"].parent == "Point"  # `impl fmt::Display for Point`
    assert found["Area.area"].signature == "fn area(&self) -> f64"
    assert found["square"].signature == "macro_rules! square"


def test_java() -> None:
    assert rows(JAVA, "java") == [
        ("ItemRepository", "class", 3, 31, 7),
        ("ItemRepository.ItemRepository", "method", 10, 12, 10),
        ("ItemRepository.find", "method", 14, 18, 16),
        ("ItemRepository.Listener", "interface", 20, 22, 20),
        ("ItemRepository.Listener.changed", "method", 21, 21, 21),
        ("ItemRepository.State", "enum", 24, 28, 24),
        ("ItemRepository.State.isOpen", "method", 27, 27, 27),
        ("ItemRepository.Entry", "class", 30, 30, 30),
    ]
    found = by_name(JAVA, "java")
    # annotations are part of the definition but not of its header
    assert found["ItemRepository"].signature == (
        "public class ItemRepository<T> extends Base implements Store<T>"
    )
    assert found["ItemRepository"].doc == "A repository of items."
    assert found["ItemRepository.find"].signature == (
        "public T find(String id) throws NotFoundException"
    )
    assert found["ItemRepository.find"].doc == "Finds one item."


def test_c() -> None:
    assert rows(C, "c") == [
        ("MAX", "macro", 3, 3, 3),
        ("node", "struct", 6, 10, 7),
        ("point_t", "type", 12, 14, 14),
        ("compare_fn", "type", 16, 16, 16),
        ("color", "enum", 18, 18, 18),
        ("list_sum", "function", 20, 27, 23),
        ("split_lines", "function", 29, 29, 29),
        ("declared_only", "function", 31, 31, 31),  # a prototype: this file's API
    ]
    found = by_name(C, "c")
    assert found["MAX"].signature == "#define MAX(a, b)"
    assert found["node"].doc == "A singly linked node."
    assert found["list_sum"].signature == "static int list_sum(const struct node *head)"
    assert found["list_sum"].doc == "Sums a list.\nReturns 0 for an empty one."
    assert found["split_lines"].signature == "char **split_lines(const char *text)"


def test_cpp() -> None:
    assert rows(CPP, "cpp") == [
        ("geo", "namespace", 3, 24, 3),
        ("geo.Shape", "class", 5, 22, 7),
        ("geo.Shape.Shape", "method", 9, 9, 9),
        ("geo.Shape.Shape", "method", 10, 10, 10),
        ("geo.Shape.~Shape", "method", 11, 11, 11),
        ("geo.Shape.area", "method", 13, 13, 13),
        ("geo.Shape.Style", "struct", 16, 18, 16),
        ("geo.Shape.draw", "method", 26, 29, 27),
        ("Registry.name", "method", 31, 31, 31),
        ("main", "function", 33, 33, 33),
    ]
    found = by_name(CPP, "cpp")
    shape = found["geo.Shape"]
    assert shape.signature == "template <typename T> class Shape : public Base"
    assert shape.doc == "A shape with an area."
    draw = found["geo.Shape.draw"]  # defined out of class, outside the namespace
    assert (draw.name, draw.parent) == ("draw", "geo.Shape")
    assert draw.signature == "void geo::Shape::draw(Canvas& canvas)"
    assert draw.doc == "Draws the outline."
    assert found["Registry.name"].parent == "Registry"
    assert found["geo.Shape.area"].signature == "T area() const"


def test_c_sharp() -> None:
    assert rows(C_SHARP, "c_sharp") == [
        ("Shop.Orders", "namespace", 3, 30, 3),
        ("Shop.Orders.Line", "class", 5, 6, 6),
        ("Shop.Orders.Order", "class", 8, 29, 12),
        ("Shop.Orders.Order.Order", "method", 14, 14, 14),
        ("Shop.Orders.Order.Id", "method", 16, 16, 16),
        ("Shop.Orders.Order.Total", "method", 18, 19, 19),
        ("Shop.Orders.Order.IVisitor", "interface", 21, 24, 21),
        ("Shop.Orders.Order.IVisitor.Visit", "method", 23, 23, 23),
        ("Shop.Orders.Order.Totals", "struct", 26, 26, 26),
        ("Shop.Orders.Order.Status", "enum", 28, 28, 28),
    ]
    found = by_name(C_SHARP, "c_sharp")
    order = found["Shop.Orders.Order"]
    assert order.signature == "public class Order : Entity, IOrder"
    assert order.doc == "<summary>\nAn order.\n</summary>"
    assert found["Shop.Orders.Order.Id"].signature == "public int Id"
    assert found["Shop.Orders.Order.Total"].signature == "public decimal Total()"
    assert found["Shop.Orders.Order.Total"].doc == "Sum of all lines."


def test_c_sharp_file_scoped_namespace_encloses_the_file() -> None:
    assert rows(C_SHARP_FILE_SCOPED, "c_sharp") == [
        ("Shop.Cart", "namespace", 1, 6, 1),
        ("Shop.Cart.Cart", "class", 3, 6, 3),
        ("Shop.Cart.Cart.Add", "method", 5, 5, 5),
    ]


def test_ruby() -> None:
    assert rows(RUBY, "ruby") == [
        ("Billing", "module", 1, 20, 2),
        ("Billing.Invoice", "class", 3, 19, 4),
        ("Billing.Invoice.initialize", "method", 7, 9, 7),
        ("Billing.Invoice.build", "method", 11, 14, 12),
        ("Billing.Invoice.registry", "method", 17, 17, 17),
        ("helper", "method", 22, 24, 22),
    ]
    found = by_name(RUBY, "ruby")
    assert found["Billing"].doc == "Billing helpers."
    assert found["Billing.Invoice"].signature == "class Invoice < Base"
    assert found["Billing.Invoice.build"].signature == "def self.build(attrs)"
    assert found["Billing.Invoice.build"].doc == "Builds from a hash."
    assert found["Billing.Invoice.registry"].signature == "def registry"


def test_php() -> None:
    assert rows(PHP, "php") == [
        ("format_name", "function", 4, 10, 7),
        ("User", "class", 12, 22, 13),
        ("User.name", "method", 17, 21, 18),
        ("HasName", "interface", 24, 27, 24),
        ("HasName.name", "method", 26, 26, 26),
        ("Greets", "trait", 29, 32, 29),
        ("Greets.greet", "method", 31, 31, 31),
    ]
    found = by_name(PHP, "php")
    assert found["format_name"].signature == (
        "function format_name(string $first, string $last): string"
    )
    assert found["format_name"].doc == "Formats a display name."
    assert found["User"].signature == "class User extends Model implements HasName"
    assert found["User.name"].doc == "The display name."


def test_bash() -> None:
    assert rows(BASH, "bash") == [
        ("usage", "function", 2, 6, 3),
        ("main", "function", 8, 10, 8),
    ]
    found = by_name(BASH, "bash")
    assert found["usage"].doc == "Prints usage and exits."  # the shebang is not part of it
    assert found["usage"].signature == "usage()"
    assert found["main"].signature == "function main"


# --- rules shared by every language -------------------------------------------------------------


def test_doc_comment_needs_to_touch_the_definition() -> None:
    source = (
        "// licence header\n\n// Adds.\nfunction add() {}\nlet x = 1; // trailing\n"
        "function b() {}\n"
    )
    found = by_name(source, "javascript")
    assert (found["add"].doc, found["add"].start_line) == ("Adds.", 3)
    # a comment after code on its line belongs to that code
    assert (found["b"].doc, found["b"].start_line) == ("", 6)


def test_block_comment_markers_are_stripped() -> None:
    source = "/**\n * First line.\n *\n *   indented\n */\nint f(void) { return 0; }\n"
    [f] = extract_symbols(source.encode(), "c")
    assert f.doc == "First line.\n\n  indented"
    assert f.start_line == 1


def test_signature_is_capped() -> None:
    params = ", ".join(f"argument_{i}" for i in range(100))
    [f] = extract_symbols(f"def f({params}):\n    pass\n".encode(), "python")
    assert len(f.signature) == MAX_SIGNATURE
    assert f.signature.startswith("def f(argument_0, argument_1")


def test_results_are_sorted_by_start_then_longest_first() -> None:
    for source, language in [(PYTHON, "python"), (RUST, "rust"), (CPP, "cpp"), (GO, "go")]:
        found = extract_symbols(source.encode(), language)
        keys = [(s.start_line, -s.end_line) for s in found]
        assert keys == sorted(keys)
        for s in found:
            assert s.start_line <= s.def_line <= s.end_line, s


def test_non_ascii_source() -> None:
    source = 'def grüße(name):\n    """Sagt hallo — freundlich."""\n'
    [f] = extract_symbols(source.encode(), "python")
    assert (f.name, f.doc, f.signature) == ("grüße", "Sagt hallo — freundlich.", "def grüße(name)")


# --- robustness ---------------------------------------------------------------------------------


def test_unknown_language_has_no_symbols() -> None:
    assert extract_symbols(b"def f(): pass", "cobol") == []
    assert extract_symbols(b"", "python") == []


def test_garbage_never_raises() -> None:
    rng = random.Random(1234)
    samples = [
        bytes(rng.getrandbits(8) for _ in range(5000)),  # binary, with NULs
        bytes(rng.choice(b"{}()[];:<>/*\n\t\"'#=abc") for _ in range(5000)),
        b"\xff\xfe\xfa not utf-8 \x80\x81 def f(:\n",
        b"class {{{{ def def fn fn func ((((",
        b"\n" * 1000,
    ]
    for language in languages.supported_languages():
        for sample in samples:
            result = extract_symbols(sample, language)
            assert all(isinstance(s, Symbol) for s in result)


def test_invalid_syntax_keeps_what_parses() -> None:
    source = "def ok(a):\n    return a\n\ndef broken(:\n    pass\n\nclass Fine:\n    pass\n"
    names = [s.qualified_name for s in extract_symbols(source.encode(), "python")]
    assert "ok" in names
    assert "Fine" in names


def test_binary_content_has_no_symbols() -> None:
    assert extract_symbols(b"def f():\n    pass\n\x00\x01\x02", "python") == []


def test_deeply_nested_code() -> None:
    depth = 2000
    source = "function f() {" * depth + "}" * depth
    found = extract_symbols(source.encode(), "javascript")
    assert len(found) == depth
    assert found[0].qualified_name == "f"
    assert found[-1].qualified_name == ".".join(["f"] * depth)


def test_parse_over_budget_gives_up_and_the_parser_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = b"function f() { return 1; }\n" * 5000
    monkeypatch.setattr(symbols, "PARSE_BUDGET_S", 0.0)
    assert extract_symbols(source, "javascript") == []
    monkeypatch.undo()
    # the cancelled parse must not leak into the next one
    assert [s.name for s in extract_symbols(b"function g() {}\n", "javascript")] == ["g"]


def test_broken_query_costs_only_its_language(
    fresh_languages: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for scm in languages.queries_dir().glob("*.scm"):
        shutil.copy(scm, tmp_path / scm.name)
    (tmp_path / "bash.scm").write_text("(function_definition name: (no_such_node) @name")
    fresh_languages.setattr(languages, "queries_dir", lambda: tmp_path)
    with caplog.at_level(logging.WARNING, logger="assistant.index.languages"):
        assert extract_symbols(b"f() { echo; }\n", "bash") == []
        assert extract_symbols(b"g() { echo; }\n", "bash") == []
        assert [s.name for s in extract_symbols(b"def f():\n    pass\n", "python")] == ["f"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "bash" in warnings[0]


def test_missing_grammar_costs_only_its_language(
    fresh_languages: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = dataclasses.replace(languages.SPECS["ruby"], module="no_such_grammar_module")
    fresh_languages.setitem(languages.SPECS, "ruby", broken)
    with caplog.at_level(logging.WARNING, logger="assistant.index.languages"):
        assert extract_symbols(b"def f\nend\n", "ruby") == []
        assert extract_symbols(b"def g\nend\n", "ruby") == []
        assert [s.name for s in extract_symbols(b"fn f() {}\n", "rust")] == ["f"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "no_such_grammar_module" in warnings[0]


def test_query_inheritance_cycle_is_reported(
    fresh_languages: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tsx.scm").write_text("; inherits: tsx\n")
    fresh_languages.setattr(languages, "queries_dir", lambda: tmp_path)
    with caplog.at_level(logging.WARNING, logger="assistant.index.languages"):
        assert extract_symbols(b"function f() {}", "tsx") == []
    assert "cycle" in caplog.records[0].getMessage()


def test_python_def_with_empty_body_has_no_doc() -> None:
    # An error-recovered definition whose body has no statements (found in the stdlib's
    # lib2to3 test data); this raised IndexError in py-tree-sitter 0.26.
    found = extract_symbols(b"class A:\n    def f(self):\n", "python")
    assert [s.qualified_name for s in found][:1] == ["A"]
    assert all(s.doc == "" for s in found)


def test_c_prototypes_are_a_headers_api_and_give_way_to_definitions() -> None:
    header = "/** Adds two numbers. */\nint add(int a, int b);\nchar *dup(const char *s);\n"
    assert rows(header, "c") == [("add", "function", 1, 2, 2), ("dup", "function", 3, 3, 3)]
    assert by_name(header, "c")["add"].doc == "Adds two numbers."
    # In a file that also defines it, the prototype is dropped; its doc goes to the definition.
    source = header + "int add(int a, int b) { return a + b; }\n"
    assert rows(source, "c") == [("dup", "function", 3, 3, 3), ("add", "function", 4, 4, 4)]
    assert by_name(source, "c")["add"].doc == "Adds two numbers."
    cpp = "class K {\n public:\n  void f();\n  ~K();\n};\nvoid K::f() {}\n"
    assert rows(cpp, "cpp") == [
        ("K", "class", 1, 5, 1),
        ("K.~K", "method", 4, 4, 4),
        ("K.f", "method", 6, 6, 6),
    ]


def test_python_docstrings_are_what_doc_would_be() -> None:
    """The doc of every function equals `ast.get_docstring`: f-strings and bytes are no
    docstring; implicit concatenation, parenthesized or not, is one."""
    import ast

    source = '''def plain():
    """Plain."""


def fstring():
    f"""Not {1} a doc."""


def raw_bytes():
    b"""Not a doc either."""


def joined():
    ("implicitly "
     "concatenated")


def joined_bare():
    "a" "b"


def comment_first():
    # a comment
    """After a comment."""


def number():
    42
'''
    tree = ast.parse(source)
    expected = {
        f.name: ast.get_docstring(f) or "" for f in tree.body if isinstance(f, ast.FunctionDef)
    }
    assert {s.name: s.doc for s in extract_symbols(source.encode(), "python")} == expected
    assert expected["joined"] == "implicitly concatenated" and expected["fstring"] == ""


@pytest.mark.parametrize(
    ("language", "source"),
    [
        ("javascript", "/**\n * Sends the body.\n */\n\nfunction send(body) {}\n"),
        ("typescript", "/** Sends the body. */\n\n\nexport function send(body: string) {}\n"),
        ("java", "class A {\n  /** Sends the body. */\n\n  void send() {}\n}\n"),
        ("rust", "/// Sends the body.\n\nfn send() {}\n"),
        ("php", "<?php\n/** Sends the body. */\n\nfunction send() {}\n"),
        ("cpp", "/** Sends the body. */\n\nvoid send() {}\n"),
    ],
)
def test_doc_blocks_attach_across_blank_lines_as_their_tools_read_them(
    language: str, source: str
) -> None:
    # JSDoc, Javadoc, rustdoc, phpDocumentor and Doxygen take a doc comment separated from
    # the definition by blank lines; the symbol starts at the comment.
    send = by_name(source, language)[{"java": "A.send"}.get(language, "send")]
    assert send.doc == "Sends the body."
    first = source.split("\n").index(
        next(ln for ln in source.split("\n") if "/**" in ln or "///" in ln)
    )
    assert send.start_line == first + 1


def test_plain_comments_godoc_and_file_headers_need_to_touch() -> None:
    js = "/* not a doc block */\n\nfunction a() {}\n// Plain.\n\nfunction b() {}\n"
    found = by_name(js, "javascript")
    assert found["a"].doc == "" and found["b"].doc == ""
    header = "/**\n * @license MIT\n */\n\nfunction first() {}\n"
    assert by_name(header, "javascript")["first"].doc == ""
    go = "package x\n\n// Send sends.\n\nfunc Send() {}\n"
    assert by_name(go, "go")["Send"].doc == ""  # godoc: a blank line detaches the comment
    # Only the comment nearest the definition may stand apart; the run above it must touch.
    two = "/** Old. */\n\n/** Sends. */\n\nfunction send() {}\n"
    assert by_name(two, "javascript")["send"].doc == "Sends."
