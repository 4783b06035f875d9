//! Units of work on the embedded store, run on the writer connection's own SQLite handle.
//!
//! Through sqlx every statement is a round trip to the connection's worker thread (a channel send,
//! a thread wake-up, rows sent back), so a unit of ~15 statements paid ~15 of them: at an offered
//! 100 alerts/s, a lone alert's commit was mostly thread hand-offs (`finish_task_switch` and the
//! spin-lock releases of wake-ups were ~19 % of a `bench pipeline` profile). Here the writer
//! connection is borrowed from its worker once (`lock_handle`, one hand-off), and the unit's
//! statements run on the calling thread over the same handle, through SQLite's C API: each
//! distinct statement prepared once per unit, values bound without a copy (`SQLITE_STATIC`;
//! rusqlite copies every text it binds, ~5 % of a burst's CPU with the allocations and frees).
//! The connection stays sqlx's: the unit begins and ends in autocommit mode, and every statement
//! prepared is finalised before the handle goes back.

#![allow(unsafe_code, reason = "a raw SQLite handle borrowed from sqlx; see `run_unit`'s safety contract")]

use std::collections::HashMap;
use std::ffi::{CStr, c_int};

use rusqlite::ffi;

use crate::error::{StoreError, StoreErrorKind};
use crate::unit::{Failure, Param, Step};

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        let kind = match &error {
            rusqlite::Error::SqliteFailure(failure, _) => match failure.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => StoreErrorKind::Conflict,
                _ => match failure.code {
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => StoreErrorKind::Unavailable,
                    rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::CannotOpen => {
                        StoreErrorKind::Unavailable
                    }
                    _ => StoreErrorKind::Internal,
                },
            },
            rusqlite::Error::InvalidColumnType(..) | rusqlite::Error::FromSqlConversionFailure(..) => StoreErrorKind::Invalid,
            _ => StoreErrorKind::Internal,
        };
        StoreError::new(kind, error)
    }
}

/// What running a unit left behind.
pub(crate) struct Ran {
    /// The rows each statement changed (or returned), when the unit was committed.
    pub(crate) result: Result<Vec<u64>, Failure>,
    /// The connection is still inside a transaction it could not end: it must not be reused.
    pub(crate) broken: bool,
}

/// Runs `steps` as one transaction on `db` (a connection nobody else is using meanwhile):
/// committed when every statement did its part ([`crate::unit::Check`]), rolled back otherwise.
///
/// # Safety
/// `db` must be a valid, open SQLite handle that no other thread uses until this returns.
pub(crate) unsafe fn run_unit(db: *mut ffi::sqlite3, steps: &[Step<'_>]) -> Ran {
    // SAFETY: the caller holds the handle exclusively; rusqlite neither closes it (not owned) nor
    // keeps any statement past this function (its cache is flushed when `connection` drops).
    let connection = match unsafe { rusqlite::Connection::from_handle(db) } {
        Ok(connection) => connection,
        Err(error) => return Ran { result: Err(Failure::Store(error.into())), broken: false },
    };
    if !connection.is_autocommit() {
        // sqlx ends its transactions before a connection goes back to the pool; a handle still in
        // one is not ours to write on.
        let error = StoreError::internal("the writer connection is inside a transaction");
        return Ran { result: Err(Failure::Store(error)), broken: true };
    }
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        return Ran { result: Err(Failure::Store(error.into())), broken: !connection.is_autocommit() };
    }
    let result = run_steps(db, steps)
        .and_then(|changed| connection.execute_batch("COMMIT").map(|()| changed).map_err(|error| Failure::Store(error.into())));
    if result.is_err() && !connection.is_autocommit() {
        // Nothing of the unit stays. A failed rollback leaves the transaction open: the caller
        // discards the connection rather than hand it back half-written.
        let _ = connection.execute_batch("ROLLBACK");
    }
    let broken = !connection.is_autocommit();
    Ran { result, broken }
}

/// Runs each step on `db` (inside the unit's transaction): prepared once per distinct SQL text,
/// its values bound in place (`SQLITE_STATIC`: the steps outlive every execution, and each
/// statement is reset and unbound right after its own), stepped, checked.
fn run_steps(db: *mut ffi::sqlite3, steps: &[Step<'_>]) -> Result<Vec<u64>, Failure> {
    let mut statements = Statements { db, prepared: HashMap::new() };
    let mut counts = Vec::with_capacity(steps.len());
    for step in steps {
        let statement = statements.get(&step.sql)?;
        let outcome = statements.bind(statement, &step.params).map_err(Failure::Store).and_then(|()| statements.execute(statement, step));
        // SAFETY: `statement` is a live statement of `db`, which this thread holds (run_unit's
        // contract). Reset and unbound before anything the values point into is dropped.
        unsafe {
            ffi::sqlite3_reset(statement);
            ffi::sqlite3_clear_bindings(statement);
        }
        counts.push(outcome?);
    }
    Ok(counts)
}

/// The statements of one unit, by SQL text, on a handle this thread holds; all finalised when the
/// unit's steps are done, so none outlives the borrowed handle.
struct Statements<'s> {
    db: *mut ffi::sqlite3,
    prepared: HashMap<&'s str, *mut ffi::sqlite3_stmt>,
}

impl<'s> Statements<'s> {
    fn get(&mut self, sql: &'s str) -> Result<*mut ffi::sqlite3_stmt, StoreError> {
        if let Some(&statement) = self.prepared.get(sql) {
            return Ok(statement);
        }
        let length = c_int::try_from(sql.len()).map_err(|_| StoreError::internal(format!("a statement of {} bytes", sql.len())))?;
        let mut statement = std::ptr::null_mut();
        // SAFETY: `db` is live and this thread's (run_unit's contract); `sql` is `length` valid
        // bytes, read during the call only.
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast(),
                length,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut statement,
                std::ptr::null_mut(),
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(self.error());
        }
        if statement.is_null() {
            return Err(StoreError::internal("an empty statement"));
        }
        self.prepared.insert(sql, statement);
        Ok(statement)
    }

    /// Binds `params` onto `statement` without copying them (they outlive its execution).
    /// Placeholders are anonymous (`?`, bound in order) or numbered (`$1`, bound by number
    /// wherever they appear, as sqlx does).
    fn bind(&self, statement: *mut ffi::sqlite3_stmt, params: &[Param<'_>]) -> Result<(), StoreError> {
        // SAFETY (every call below): `statement` is a live statement of the handle this thread holds.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(statement) };
        for index in 1..=count {
            let name = unsafe { ffi::sqlite3_bind_parameter_name(statement, index) };
            let position = if name.is_null() {
                usize::try_from(index).unwrap_or(usize::MAX)
            } else {
                // SAFETY: SQLite returns a NUL-terminated UTF-8 name valid while the statement is.
                let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
                name.strip_prefix('$')
                    .or_else(|| name.strip_prefix('?'))
                    .and_then(|number| number.parse::<usize>().ok())
                    .ok_or_else(|| StoreError::internal(format!("unsupported placeholder {name}")))?
            };
            let param = position
                .checked_sub(1)
                .and_then(|at| params.get(at))
                .ok_or_else(|| StoreError::internal(format!("placeholder {position} has no value ({} bound)", params.len())))?;
            let code = match param {
                // SQLITE_STATIC: the text stays where it is until the statement is unbound (run_steps).
                Param::Text(text) => unsafe {
                    ffi::sqlite3_bind_text64(
                        statement,
                        index,
                        text.as_ptr().cast(),
                        text.len() as ffi::sqlite3_uint64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as std::ffi::c_uchar,
                    )
                },
                Param::Int(value) => unsafe { ffi::sqlite3_bind_int64(statement, index, *value) },
                Param::Null => unsafe { ffi::sqlite3_bind_null(statement, index) },
            };
            if code != ffi::SQLITE_OK {
                return Err(self.error());
            }
        }
        Ok(())
    }

    /// Steps `statement` to its end and checks what it did: the rows it changed, or, for a
    /// returning check, the first column of each row it returned.
    fn execute(&self, statement: *mut ffi::sqlite3_stmt, step: &Step<'_>) -> Result<u64, Failure> {
        let mut returned = Vec::new();
        loop {
            // SAFETY: a live, bound statement of the handle this thread holds.
            match unsafe { ffi::sqlite3_step(statement) } {
                ffi::SQLITE_DONE => break,
                ffi::SQLITE_ROW if step.check.returns_rows() => {
                    // SAFETY: column 0 of the current row; the text is copied out before the next step.
                    let text = unsafe {
                        let bytes = ffi::sqlite3_column_text(statement, 0);
                        let length = usize::try_from(ffi::sqlite3_column_bytes(statement, 0)).unwrap_or(0);
                        if bytes.is_null() { &[][..] } else { std::slice::from_raw_parts(bytes, length) }
                    };
                    returned.push(String::from_utf8_lossy(text).into_owned());
                }
                ffi::SQLITE_ROW => {}
                _ => return Err(Failure::Store(step.check.error(self.error()))),
            }
        }
        let changed = if step.check.returns_rows() {
            returned.len() as u64
        } else {
            // SAFETY: the handle this thread holds.
            u64::try_from(unsafe { ffi::sqlite3_changes64(self.db) }).unwrap_or(0)
        };
        step.check.verify(changed, &returned)?;
        Ok(changed)
    }

    /// The handle's last error, as the store error rusqlite's would map to.
    fn error(&self) -> StoreError {
        // SAFETY: the handle this thread holds; the message is copied before any other call.
        let (code, message) = unsafe {
            let message = ffi::sqlite3_errmsg(self.db);
            let message = if message.is_null() { String::new() } else { CStr::from_ptr(message).to_string_lossy().into_owned() };
            (ffi::sqlite3_extended_errcode(self.db), message)
        };
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message)).into()
    }
}

impl Drop for Statements<'_> {
    fn drop(&mut self) {
        for (_, statement) in self.prepared.drain() {
            // SAFETY: each is a statement of the handle this thread still holds, finalised once.
            unsafe { ffi::sqlite3_finalize(statement) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::Check;

    fn open() -> rusqlite::Connection {
        let connection = rusqlite::Connection::open_in_memory().expect("open");
        connection.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, note TEXT)").expect("create");
        connection
    }

    fn step(sql: &'static str, params: Vec<Param<'static>>, check: Check) -> Step<'static> {
        Step { sql: sql.into(), params, check }
    }

    fn rows(connection: &rusqlite::Connection) -> Vec<(String, i64, Option<String>)> {
        let mut statement = connection.prepare("SELECT id, n, note FROM t ORDER BY id").expect("prepare");
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).expect("query").map(|r| r.expect("row")).collect()
    }

    #[test]
    fn numbered_and_anonymous_placeholders_bind_the_right_values() {
        let connection = open();
        let steps = [
            step(
                "INSERT INTO t (id, n, note) VALUES (?, ?, ?), (?, ?, ?)",
                vec!["a".into(), 1.into(), Param::Null, "b".into(), 2.into(), "x".into()],
                Check::Nothing,
            ),
            // Numbered out of order and repeated.
            step(
                "UPDATE t SET note = $2 || $2, n = $3 WHERE id = $1",
                vec!["a".into(), "y".into(), 7.into()],
                Check::Changes("a moved".into()),
            ),
        ];
        let ran = unsafe { run_unit(connection.handle(), &steps) };
        assert!(!ran.broken);
        assert_eq!(ran.result.ok(), Some(vec![2, 1]), "rows changed per statement");
        assert_eq!(rows(&connection), vec![("a".into(), 7, Some("yy".into())), ("b".into(), 2, Some("x".into()))]);
    }

    #[test]
    fn a_failed_check_rolls_the_whole_unit_back() {
        let connection = open();
        let steps = [
            step("INSERT INTO t (id, n) VALUES (?, ?)", vec!["a".into(), 1.into()], Check::Nothing),
            step("UPDATE t SET n = 2 WHERE id = $1", vec!["missing".into()], Check::Changes("missing moved".into())),
        ];
        let ran = unsafe { run_unit(connection.handle(), &steps) };
        match ran.result {
            Err(Failure::Store(error)) => {
                assert_eq!(error.kind, StoreErrorKind::Conflict);
                assert!(format!("{error:#}").contains("missing moved"));
            }
            other => panic!("expected a conflict, got {:?}", other.err()),
        }
        assert!(!ran.broken && connection.is_autocommit());
        assert!(rows(&connection).is_empty(), "the insert before the failed check was rolled back");
    }

    #[test]
    fn unique_violations_and_returned_rows_are_checked() {
        let connection = open();
        let insert = |id: &'static str| step("INSERT INTO t (id, n) VALUES (?, 1)", vec![id.into()], Check::Unique(format!("{id} exists")));
        assert!(unsafe { run_unit(connection.handle(), &[insert("a")]) }.result.is_ok());
        match unsafe { run_unit(connection.handle(), &[insert("a")]) }.result {
            Err(Failure::Store(error)) => {
                assert_eq!(error.kind, StoreErrorKind::Conflict);
                assert!(format!("{error:#}").contains("a exists"));
            }
            other => panic!("expected a conflict, got {:?}", other.err()),
        }
        let returning = step(
            "INSERT INTO t (id, n) VALUES (?, 1), (?, 1) ON CONFLICT (id) DO NOTHING RETURNING id",
            vec!["a".into(), "b".into()],
            Check::Returns(vec![("a".into(), "a was there".into()), ("b".into(), "b was there".into())]),
        );
        match unsafe { run_unit(connection.handle(), &[returning]) }.result {
            Err(Failure::Store(error)) => assert!(format!("{error:#}").contains("a was there")),
            other => panic!("expected a conflict, got {:?}", other.err()),
        }
        assert_eq!(rows(&connection).len(), 1, "b's insert was rolled back with the unit");
    }

    /// Units insert `OR FAIL` (no statement journal): a multi-row insert failing on its second row
    /// keeps its first only until the unit rolls back, which it always does on a failure.
    #[test]
    fn a_failing_insert_leaves_none_of_its_rows_nor_the_units_earlier_ones() {
        let connection = open();
        let kept = step("INSERT INTO t (id, n) VALUES (?, ?)", vec!["kept".into(), 0.into()], Check::Nothing);
        assert!(unsafe { run_unit(connection.handle(), &[kept]) }.result.is_ok());
        let steps = [
            step("INSERT OR FAIL INTO t (id, n) VALUES (?, ?)", vec!["a".into(), 1.into()], Check::Nothing),
            step(
                "INSERT OR FAIL INTO t (id, n) VALUES (?, ?), (?, ?), (?, ?)",
                vec!["b".into(), 2.into(), "kept".into(), 3.into(), "c".into(), 4.into()],
                Check::Unique("kept exists".into()),
            ),
        ];
        let ran = unsafe { run_unit(connection.handle(), &steps) };
        assert!(matches!(ran.result, Err(Failure::Store(ref error)) if error.kind == StoreErrorKind::Conflict));
        assert!(!ran.broken && connection.is_autocommit());
        assert_eq!(rows(&connection), vec![("kept".into(), 0, None)], "neither a nor b stayed");
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error_not_a_null() {
        let connection = open();
        let ran =
            unsafe { run_unit(connection.handle(), &[step("INSERT INTO t (id, n) VALUES (?, ?)", vec!["a".into()], Check::Nothing)]) };
        assert!(matches!(ran.result, Err(Failure::Store(ref error)) if format!("{error:#}").contains("placeholder 2 has no value")));
        assert!(rows(&connection).is_empty());
    }

    #[test]
    fn a_skippable_write_that_changed_nothing_asks_for_a_replan() {
        let connection = open();
        let id = aluskort_core::InvestigationId::new();
        let ran = unsafe { run_unit(connection.handle(), &[step("UPDATE t SET n = 1 WHERE id = 'none'", vec![], Check::Skippable(id))]) };
        assert!(matches!(ran.result, Err(Failure::Skip(skipped)) if skipped == id));
    }
}
