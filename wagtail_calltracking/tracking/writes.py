"""The tracking write path: every row the hot path writes (visitor, session, page view), in as
few statements as the database allows, and the deferral of those writes until the response
has been handed to the server.

**Statements.** PostgreSQL / SQLite (other databases: the same rows through the ORM):

* a new session — the visitor (when new, or when the one the cookie names was erased or
  purged), the session and its first page view: **one statement** on PostgreSQL (data-modifying
  CTEs; the visitor named by the cookie is locked ``FOR KEY SHARE`` so a concurrent purge or
  erasure cannot remove it under the new session), one transaction of at most three INSERTs on
  SQLite;
* the page view of a continuing session — one INSERT guarded by the session's existence
  (a purged or erased session never gets a dangling row);
* the throttled activity write of a session (at most once per
  ``ACTIVITY_WRITE_INTERVAL_SECONDS``) with the page view — one statement on PostgreSQL
  (``UPDATE … RETURNING`` feeding the INSERT), the UPDATE and the guarded INSERT on SQLite.

**Durability.** Outside a transaction each of these is its own transaction, and on PostgreSQL
it commits asynchronously (``synchronous_commit = off``, set inside the statement itself: no
BEGIN/SET/COMMIT round trips). Page views are telemetry: a database crash can lose the last
fraction of a second of them (never a call, never a lease: those commit synchronously). Inside
the project's own transaction (``ATOMIC_REQUESTS``, tests) the writes join it under a
savepoint: its durability is not ours to relax, and a failed write cannot abort it.

**After the response.** :func:`after_response` runs a write when the server closes the
response — after the last byte was handed to the client (WSGI servers call ``close()`` after
sending, Django's ASGI handler after the final body message, streaming responses included). The
visitor never waits for it, and a failure is logged, never raised. The durability story is the
asynchronous commit's: a write still pending when the process dies (a crash, a kill -9 between
the response and its close) is lost, like an unflushed asynchronous commit; a graceful
restart lets in-flight requests finish, their closes included. A client that disconnects before
the response is complete (ASGI cancels the request) records nothing.

**Ids allocated up front.** A deferred new session must put its ids in the cookie of a response
sent before the rows exist, so the ids come from the tables' own sequences, reserved in blocks
of :data:`ID_BLOCK_SIZE` per process (PostgreSQL: ``nextval`` of the identity sequence;
SQLite: ``sqlite_sequence``, which AUTOINCREMENT keys honour): one query per block, not per
visitor, and never an id that the database could hand out again. Ids of a block left unused
when a process exits are gaps, as rolled-back inserts leave.
"""

# SQL here is built from model metadata (table and column names); every value is a parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, models, transaction

logger = logging.getLogger(__name__)

#: Ids reserved per query and process (visitors and sessions, each). A block is used up by as
#: many new visitors; ids left when the process exits are gaps.
ID_BLOCK_SIZE = 32

_PAGE_VIEW_COLUMNS = ("session_id", "viewed_at", "path", "query", "page_id", "title")
_ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true) IS NOT NULL"


def _db():
    # The connection itself, looked up once per write (the ``connection`` proxy costs a
    # context-local lookup on every attribute access).
    return connections[DEFAULT_DB_ALIAS]


def _sql_per_vendor(build):
    """Cache the SQL ``build(conn, *flags)`` returns per database vendor and flags (connections
    are per thread: they are not the key)."""
    cache = {}

    @functools.wraps(build)
    def cached(conn, *flags):
        key = (conn.vendor, *flags)
        sql = cache.get(key)
        if sql is None:
            sql = cache[key] = build(conn, *flags)
        return sql

    cached.cache_clear = cache.clear
    return cached


# --- after the response ------------------------------------------------------------------------


def after_response(response, write) -> None:
    """Run ``write()`` when the server closes ``response`` (see the module docstring)."""
    response._resource_closers.append(functools.partial(_run_after_response, write))


def _run_after_response(write) -> None:
    # Django swallows exceptions of resource closers silently: log them ourselves.
    try:
        write()
    except Exception:
        logger.exception("Call tracking could not record a visit after the response")


# --- rows --------------------------------------------------------------------------------------


@dataclass
class NewSession:
    """The rows of a session being started (see :func:`start_session`)."""

    #: Session column values by attname (``visitor_id`` is set by the statement).
    fields: dict
    #: When the visitor row (if one is created) was first seen.
    now: datetime
    #: The visitor the cookie names: kept when it still exists, else a new visitor is created.
    visitor_id: int | None = None
    #: Reserved ids (:func:`reserve_id`) of the visitor to create and of the session; None:
    #: the database's default.
    new_visitor_id: int | None = None
    session_id: int | None = None
    visitor_key: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class StartedSession:
    visitor_id: int
    session_id: int
    visitor_created: bool


def _models():
    from ..models import PageView, Visitor, VisitorSession

    return Visitor, VisitorSession, PageView


@functools.lru_cache(maxsize=16)
def _columns(model, exclude=("id",)) -> tuple:
    return tuple(f for f in model._meta.concrete_fields if f.attname not in exclude)


# Field classes whose database value is the Python value itself when it has this exact type
# (``get_db_prep_save`` would only check and return it): rows skip that call chain.
_PLAIN_VALUES = {
    models.CharField: str,
    models.TextField: str,
    models.BooleanField: bool,
    models.IntegerField: int,
    models.BigIntegerField: int,
    models.SmallIntegerField: int,
    models.PositiveIntegerField: int,
}


def _plain_type(column):
    if type(column) is models.ForeignKey:
        return int if isinstance(column.target_field, models.IntegerField) else None
    return _PLAIN_VALUES.get(type(column))


@functools.lru_cache(maxsize=32)
def _row_plan(model, exclude=("id",)) -> tuple:
    return tuple((c.attname, _plain_type(c), c) for c in _columns(model, exclude))


def _row(conn, model, values: dict, exclude=("id",)) -> list:
    """Parameters for the columns of ``model`` (but ``exclude``): the given values, else the
    field defaults."""
    row = []
    for attname, plain, column in _row_plan(model, exclude):
        value = values[attname] if attname in values else column.get_default()
        row.append(value if value is None or type(value) is plain else column.get_db_prep_save(value, conn))
    return row


def _params(conn, model, values: dict, names) -> list:
    opts = model._meta
    return [opts.get_field(name).get_db_prep_save(values[name], conn) for name in names]


@contextlib.contextmanager
def _write_unit(conn, *, atomic_in_autocommit: bool):
    """Autocommit: a transaction only when asked (several statements that belong together).
    Inside the project's transaction: a savepoint, so that a failed write cannot abort it."""
    if conn.get_autocommit() and not atomic_in_autocommit:
        yield
        return
    with transaction.atomic(using=conn.alias):
        yield


def _async_commit(conn) -> bool:
    """This statement is its own transaction on PostgreSQL: commit it asynchronously."""
    return conn.vendor == "postgresql" and conn.get_autocommit()


def _cast(conn, column) -> str:
    return f"CAST(%s AS {column.db_type(conn)})"


def _placeholders(conn, columns, cast: bool) -> str:
    return ", ".join(_cast(conn, c) if cast else "%s" for c in columns)


def _names(conn, columns) -> str:
    return ", ".join(conn.ops.quote_name(c.column) for c in columns)


# --- a new session -----------------------------------------------------------------------------


def start_session(new: NewSession, page_view: dict | None = None) -> StartedSession:
    """Insert the session of ``new`` (and its visitor when needed) and, when given, its first
    page view (``page_view``: :data:`_PAGE_VIEW_COLUMNS` values but ``session_id``)."""
    conn = _db()
    try:
        if conn.vendor == "postgresql":
            return _start_session_postgresql(conn, new, page_view)
        if conn.vendor == "sqlite":
            return _start_session_sqlite(conn, new, page_view)
        return _start_session_orm(conn, new, page_view)
    except IntegrityError:
        if new.new_visitor_id is not None or new.session_id is not None:
            # A reserved id is taken: the sequences were reset under this process (flush,
            # sqlsequencereset). Reserve afresh from now on.
            forget_reserved_ids()
        raise


@_sql_per_vendor
def _start_sql_postgresql(conn, explicit_visitor: bool, explicit_session: bool, with_page_view: bool,
                          async_commit: bool) -> str:
    """``known``: the cookie's visitor, locked against deletion until commit; ``created``: a new
    visitor unless it is known; ``started``: the session of either; ``viewed``: the page view."""
    Visitor, VisitorSession, PageView = _models()
    qn = conn.ops.quote_name
    pk = qn("id")
    visitor_pk, session_pk = Visitor._meta.pk, VisitorSession._meta.pk
    visitor_columns = ((visitor_pk,) if explicit_visitor else ()) + _columns(Visitor)
    session_columns = _columns(VisitorSession, ("id", "visitor_id"))
    session_ids = (session_pk,) if explicit_session else ()
    session_names = _names(conn, (*session_ids, VisitorSession._meta.get_field("visitor"), *session_columns))
    session_values = ", ".join(
        [_cast(conn, c) for c in session_ids] + [f"chosen.{pk}"] + [_cast(conn, c) for c in session_columns]
    )
    where = f" WHERE {_ASYNC_COMMIT}" if async_commit else ""
    visitor_table, session_table = qn(Visitor._meta.db_table), qn(VisitorSession._meta.db_table)
    parts = [
        f"known AS (SELECT {pk} FROM {visitor_table} WHERE {pk} = {_cast(conn, visitor_pk)} FOR KEY SHARE)",
        f"created AS (INSERT INTO {visitor_table} ({_names(conn, visitor_columns)}) "
        f"SELECT {_placeholders(conn, visitor_columns, True)} WHERE NOT EXISTS (SELECT 1 FROM known) "
        f"RETURNING {pk})",
        f"chosen AS (SELECT {pk} FROM known UNION ALL SELECT {pk} FROM created)",
        f"started AS (INSERT INTO {session_table} ({session_names}) "
        f"SELECT {session_values} FROM chosen{where} RETURNING {pk}, {qn('visitor_id')})",
    ]
    if with_page_view:
        view_columns = _columns(PageView, ("id", "session_id"))
        view_table = qn(PageView._meta.db_table)
        parts.append(
            f"viewed AS (INSERT INTO {view_table} ({qn('session_id')}, {_names(conn, view_columns)}) "
            f"SELECT started.{pk}, {_placeholders(conn, view_columns, True)} FROM started)"
        )
    select = f"SELECT started.{pk}, started.{qn('visitor_id')}, EXISTS (SELECT 1 FROM created) FROM started"
    return "WITH " + ", ".join(parts) + " " + select


def _visitor_row(conn, new: NewSession) -> list:
    return _row(conn, _models()[0], {"key": new.visitor_key, "created_at": new.now})


def _start_session_postgresql(conn, new: NewSession, page_view: dict | None) -> StartedSession:
    _, VisitorSession, PageView = _models()
    sql = _start_sql_postgresql(
        conn, new.new_visitor_id is not None, new.session_id is not None, page_view is not None,
        _async_commit(conn),
    )
    params = [new.visitor_id]
    if new.new_visitor_id is not None:
        params.append(new.new_visitor_id)
    params += _visitor_row(conn, new)
    if new.session_id is not None:
        params.append(new.session_id)
    params += _row(conn, VisitorSession, new.fields, ("id", "visitor_id"))
    if page_view is not None:
        params += _row(conn, PageView, page_view, ("id", "session_id"))
    with _write_unit(conn, atomic_in_autocommit=False), conn.cursor() as cursor:
        cursor.execute(sql, params)
        session_id, visitor_id, created = cursor.fetchone()
    return StartedSession(visitor_id=visitor_id, session_id=session_id, visitor_created=created)


@_sql_per_vendor
def _insert_sql(conn, model, explicit_id: bool, if_missing: bool) -> str:
    qn = conn.ops.quote_name
    columns = ((model._meta.pk,) if explicit_id else ()) + _columns(model)
    table = qn(model._meta.db_table)
    if if_missing:  # insert unless the row named by the last parameter exists
        return (
            f"INSERT INTO {table} ({_names(conn, columns)}) SELECT {_placeholders(conn, columns, False)} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {qn('id')} = %s)"
        )
    return f"INSERT INTO {table} ({_names(conn, columns)}) VALUES ({_placeholders(conn, columns, False)})"


def _start_session_sqlite(conn, new: NewSession, page_view: dict | None) -> StartedSession:
    Visitor, VisitorSession, PageView = _models()
    explicit_visitor = new.new_visitor_id is not None
    explicit_session = new.session_id is not None
    visitor_params = ([new.new_visitor_id] if explicit_visitor else []) + _visitor_row(conn, new)
    with _write_unit(conn, atomic_in_autocommit=True), conn.cursor() as cursor:
        # One statement for the visitor: insert one unless the cookie's still exists (the
        # transaction holds the write lock, so it cannot vanish before the session is in).
        if new.visitor_id is not None:
            cursor.execute(_insert_sql(conn, Visitor, explicit_visitor, True), [*visitor_params, new.visitor_id])
            visitor_created = cursor.rowcount == 1
        else:
            cursor.execute(_insert_sql(conn, Visitor, explicit_visitor, False), visitor_params)
            visitor_created = True
        if not visitor_created:
            visitor_id = new.visitor_id
        else:
            visitor_id = new.new_visitor_id if explicit_visitor else cursor.lastrowid
        session_params = ([new.session_id] if explicit_session else []) + _row(
            conn, VisitorSession, {**new.fields, "visitor_id": visitor_id}
        )
        cursor.execute(_insert_sql(conn, VisitorSession, explicit_session, False), session_params)
        session_id = new.session_id if explicit_session else cursor.lastrowid
        if page_view is not None:
            view_params = _row(conn, PageView, {**page_view, "session_id": session_id})
            cursor.execute(_insert_sql(conn, PageView, False, False), view_params)
    return StartedSession(visitor_id=visitor_id, session_id=session_id, visitor_created=visitor_created)


def _start_session_orm(conn, new: NewSession, page_view: dict | None) -> StartedSession:
    Visitor, VisitorSession, PageView = _models()
    with _write_unit(conn, atomic_in_autocommit=True):
        visitor_id = new.visitor_id
        created = visitor_id is None or not Visitor.objects.filter(pk=visitor_id).exists()
        if created:
            visitor = Visitor(pk=new.new_visitor_id, created_at=new.now, key=new.visitor_key)
            visitor.save(force_insert=True)
            visitor_id = visitor.pk
        session = VisitorSession(pk=new.session_id, visitor_id=visitor_id, **new.fields)
        session.save(force_insert=True)
        if page_view is not None:
            PageView.objects.create(session_id=session.pk, **page_view)
    return StartedSession(visitor_id=visitor_id, session_id=session.pk, visitor_created=created)


# --- a continuing session ----------------------------------------------------------------------


@_sql_per_vendor
def _guarded_insert_sql(conn, async_commit: bool) -> str:
    """INSERT … SELECT … WHERE EXISTS(session), built once per database and mode."""
    _, VisitorSession, PageView = _models()
    qn = conn.ops.quote_name
    columns = _columns(PageView)
    sql = (
        f"INSERT INTO {qn(PageView._meta.db_table)} ({_names(conn, columns)}) "
        f"SELECT {_placeholders(conn, columns, conn.vendor == 'postgresql')} "
        f"WHERE EXISTS (SELECT 1 FROM {qn(VisitorSession._meta.db_table)} WHERE {qn('id')} = %s)"
    )
    if async_commit:
        sql += f" AND {_ASYNC_COMMIT}"
    return sql


def insert_page_view(session_id: int, page_view: dict) -> bool:
    """One INSERT of the page view, guarded so that a purged or erased session never gets a
    dangling row (foreign keys are checked at commit, too late to recover). False: the session
    is gone and nothing was written."""
    conn = _db()
    params = _row(conn, _models()[2], {**page_view, "session_id": session_id})
    params.append(session_id)
    with _write_unit(conn, atomic_in_autocommit=False), conn.cursor() as cursor:
        cursor.execute(_guarded_insert_sql(conn, _async_commit(conn)), params)
        return cursor.rowcount == 1


@_sql_per_vendor
def _touch_sql_postgresql(conn, with_ga: bool, with_page_view: bool, async_commit: bool) -> str:
    _, VisitorSession, PageView = _models()
    qn = conn.ops.quote_name
    pk = qn("id")
    opts = VisitorSession._meta
    names = ["last_activity_at"] + (["ga_client_id", "ga_session_ids"] if with_ga else [])
    assignments = ", ".join(f"{qn(name)} = {_cast(conn, opts.get_field(name))}" for name in names)
    where = f"{pk} = %s" + (f" AND {_ASYNC_COMMIT}" if async_commit else "")
    sql = (
        f"WITH touched AS (UPDATE {qn(opts.db_table)} SET {assignments} "
        f"WHERE {where} RETURNING {pk}, {qn('visitor_id')})"
    )
    if with_page_view:
        view_columns = _columns(PageView, ("id", "session_id"))
        view_table = qn(PageView._meta.db_table)
        sql += (
            f", viewed AS (INSERT INTO {view_table} ({qn('session_id')}, {_names(conn, view_columns)}) "
            f"SELECT touched.{pk}, {_placeholders(conn, view_columns, True)} FROM touched)"
        )
    return sql + f" SELECT touched.{qn('visitor_id')} FROM touched"


@dataclass(frozen=True)
class Touched:
    #: The session still exists (its activity was written).
    found: bool
    #: Its visitor (None: not read on this database).
    visitor_id: int | None = None


def touch_session(session_id: int, updates: dict, page_view: dict | None = None) -> Touched:
    """The session's activity write (``updates``: ``last_activity_at`` and, optionally, the GA
    ids), and the page view when given. Reports whether the session exists, and its visitor (the
    cookie's may be out of date: a deferred session whose visitor had been erased gets a new one)."""
    conn = _db()
    VisitorSession, PageView = _models()[1:]
    names = ["last_activity_at"] + (["ga_client_id", "ga_session_ids"] if "ga_client_id" in updates else [])
    params = _params(conn, VisitorSession, updates, names)
    if conn.vendor == "postgresql":
        params.append(session_id)
        if page_view is not None:
            params += _row(conn, PageView, page_view, ("id", "session_id"))
        sql = _touch_sql_postgresql(conn, len(names) > 1, page_view is not None, _async_commit(conn))
        with _write_unit(conn, atomic_in_autocommit=False), conn.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return Touched(found=row is not None, visitor_id=row[0] if row else None)
    # SQLite and others: the UPDATE (returning the visitor where the database can), then the
    # guarded INSERT — each its own statement, no transaction needed.
    if conn.vendor == "sqlite" and conn.features.can_return_columns_from_insert:
        qn = conn.ops.quote_name
        opts = VisitorSession._meta
        assignments = ", ".join(f"{qn(opts.get_field(name).column)} = %s" for name in names)
        sql = f"UPDATE {qn(opts.db_table)} SET {assignments} WHERE {qn('id')} = %s RETURNING {qn('visitor_id')}"
        with _write_unit(conn, atomic_in_autocommit=False), conn.cursor() as cursor:
            cursor.execute(sql, [*params, session_id])
            row = cursor.fetchone()
        found, visitor_id = row is not None, (row[0] if row else None)
    else:
        found, visitor_id = bool(VisitorSession.objects.filter(pk=session_id).update(**updates)), None
    if found and page_view is not None:
        insert_page_view(session_id, page_view)
    return Touched(found=found, visitor_id=visitor_id)


class _MissingSessions:
    """Sessions a deferred page view found gone (purged, erased, or never written because the
    write failed), remembered by this process so that its next request of the same visitor
    checks the session before the response (the throttled activity write, which finds it gone
    and starts the visitor afresh) instead of waiting up to ``ACTIVITY_WRITE_INTERVAL_SECONDS``.
    Bounded: an id is only a hint, and the check itself is made against the database."""

    LIMIT = 4096

    def __init__(self):
        self._ids: set[int] = set()

    def note(self, session_id: int) -> None:
        if len(self._ids) >= self.LIMIT:
            self._ids.clear()
        self._ids.add(session_id)

    def __contains__(self, session_id) -> bool:
        return session_id in self._ids

    def discard(self, session_id: int) -> None:
        self._ids.discard(session_id)


missing_sessions = _MissingSessions()


# --- ids allocated up front --------------------------------------------------------------------

_reserved: dict[tuple, list[int]] = {}
_reserved_lock = threading.Lock()


def _reservation_key(conn, model) -> tuple:
    return (conn.alias, str(conn.settings_dict.get("NAME")), model._meta.db_table)


def reserve_id(model) -> int | None:
    """An id for a row of ``model`` that will be inserted later (after the response), taken
    from the table's own sequence; None when this database cannot reserve one (the caller then
    writes the row at once and lets the database choose)."""
    conn = _db()
    vendor = conn.vendor
    if vendor not in ("postgresql", "sqlite"):
        return None
    key = _reservation_key(conn, model)
    with _reserved_lock:
        block = _reserved.get(key)
        if block:
            return block.pop()
    # PostgreSQL: nextval is never rolled back, a block can be kept. SQLite: the reservation is
    # part of the current transaction; only one made in autocommit (committed at once) is kept.
    keep = vendor == "postgresql" or conn.get_autocommit()
    try:
        if vendor == "postgresql":
            ids = _reserve_postgresql(conn, model, ID_BLOCK_SIZE)
        else:
            ids = _reserve_sqlite(conn, model, ID_BLOCK_SIZE if keep else 1)
    except DatabaseError:
        logger.warning("Could not reserve ids for %s; writing the rows at once", model._meta.label, exc_info=True)
        return None
    if keep and len(ids) > 1:
        with _reserved_lock:
            _reserved.setdefault(key, []).extend(reversed(ids[1:]))
    return ids[0]


def forget_reserved_ids() -> None:
    with _reserved_lock:
        _reserved.clear()


def _reserve_postgresql(conn, model, count: int) -> list[int]:
    qn = conn.ops.quote_name
    with _write_unit(conn, atomic_in_autocommit=False), conn.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [qn(model._meta.db_table), model._meta.pk.column, count],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _reserve_sqlite(conn, model, count: int) -> list[int]:
    """Move the table's AUTOINCREMENT counter past ``count`` ids (SQLite never hands out an id
    below it again), in one write transaction."""
    qn = conn.ops.quote_name
    table = model._meta.db_table
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT %s, 0 "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = %s)",
            [table, table],
        )
        cursor.execute(
            # The highest id in use counts too (rows inserted before the counter existed).
            f"UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT MAX({qn(model._meta.pk.column)}) "
            f"FROM {qn(table)}), 0)) + %s WHERE name = %s",
            [count, table],
        )
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        end = cursor.fetchone()[0]
    return list(range(end - count + 1, end + 1))
