//! The classes' constructor arguments, taken as Python classes take them.
//!
//! CPython's semaphores are Python classes: `__init__` sets their state, and `object.__new__`
//! leaves the arguments to it, so a subclass may take more (`def __init__(self, value, tag)`) and
//! call `super().__init__(value)`. These classes make their engine in `__new__`, once (it is
//! frozen), so:
//! - for the class itself, `__new__` takes exactly its arguments (`value=1`, and keywords);
//! - for a Python subclass, `__new__` reads `value` from the first positional argument or
//!   `value=` (and the keywords by name), and leaves the rest to the subclass's `__init__`;
//! - `__init__` takes the same arguments, as CPython's `__init__` does, and checks that `value`
//!   is the one the object was made with: the count cannot be set again, and a different one
//!   ignored would be a semaphore of another size than asked for.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyTuple, PyType};

/// `__new__`'s arguments `(value=1, *, names[1..])` by name: strictly for the class `own` itself,
/// leniently for a subclass (see the module header).
pub(crate) fn new_args<'py, const N: usize>(
    cls: &Bound<'py, PyType>,
    own: &Bound<'py, PyType>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
    names: [&str; N],
) -> PyResult<[Option<Bound<'py, PyAny>>; N]> {
    let strict = cls.is(own);
    let class = own.name()?;
    let mut out: [Option<Bound<'py, PyAny>>; N] = std::array::from_fn(|_| None);
    if strict && args.len() > 1 {
        return Err(PyTypeError::new_err(format!(
            "{class}() takes at most 1 positional argument ({} given)",
            args.len()
        )));
    }
    out[0] = args.get_item(0).ok();
    for (key, value) in kwargs.into_iter().flatten() {
        let key: String = key.extract()?;
        match names.iter().position(|n| *n == key) {
            Some(0) if out[0].is_some() && strict => {
                return Err(PyTypeError::new_err(format!(
                    "{class}() got multiple values for argument 'value'"
                )));
            }
            Some(i) => out[i] = Some(value),
            None if strict => {
                return Err(PyTypeError::new_err(format!(
                    "{class}() got an unexpected keyword argument '{key}'"
                )));
            }
            None => {}
        }
    }
    Ok(out)
}

/// An in-process semaphore's `value` (default 1): an integer, or a float with a whole value
/// (CPython's threading and asyncio semaphores take a float; one with a fraction would count
/// in fractions of a permit, which these cannot).
pub(crate) fn count(value: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    let Some(value) = value else { return Ok(1) };
    if let Ok(float) = value.downcast::<PyFloat>() {
        let f = float.value();
        if f.is_finite() && f.fract() == 0.0 {
            // Saturating: past the limit either way, which `Engine::new` reports.
            return Ok(f as i64);
        }
        return Err(PyTypeError::new_err(format!("initial value must be a whole number, not {f}")));
    }
    value.extract()
}

/// `__init__`'s check (see the module header): `value` (default 1) is `made`, the value the
/// object was made with (`None`: not known, as for a handle opened by name).
pub(crate) fn check_init(class: &str, value: i64, made: Option<i64>) -> PyResult<()> {
    match made {
        Some(made) if made != value => Err(PyValueError::new_err(format!(
            "{class}.__init__(value={value}): the semaphore was made with value={made}; its value \
             is set when it is made, from the first argument or `value=` of the call of the class"
        ))),
        _ => Ok(()),
    }
}
