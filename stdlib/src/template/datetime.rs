//! Python's `datetime.date`, `datetime.datetime` and `datetime.timedelta` in templates:
//! what Ansible's `to_datetime` filter returns, what a YAML 1.1 timestamp in a vars file
//! is (`2024-01-15`, read as `{"!!timestamp": ...}` by `toyc_engine::yaml11`), what
//! Ansible's `now()` returns, and what subtracting them gives. They print, compare and answer `.days`, `.total_seconds()`,
//! `.strftime(...)`, `.year`, ... as Python's do.
//!
//! minijinja has no operator overloading, so the template rewrite (`undefined.rs`) turns
//! every `a - b` into `a | __toyc_minus(b)`, and [`minus`] subtracts numbers as minijinja
//! does and dates as Python does.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::sync::{Arc, LazyLock};

use chrono::format::{parse, Parsed, StrftimeItems};
use chrono::{Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use minijinja::value::{DynObject, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error, State};
use regex::Regex;

use super::filters::{invalid, text};
use super::pyfmt::undefined_error;

/// The filter the rewritten `-` calls.
pub(crate) const MINUS: &str = "__toyc_minus";

/// A date, or a date and time (with a UTC offset when the text had one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moment {
    /// `datetime.date`.
    Date(NaiveDate),
    /// `datetime.datetime`, naive or with a fixed offset.
    DateTime(NaiveDateTime, Option<FixedOffset>),
}

/// `datetime.timedelta`, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timedelta(i64);

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Moment {
    /// The value a template sees.
    pub(crate) fn value(self) -> Value {
        Value::from_object(self)
    }

    /// PyYAML's `construct_yaml_timestamp` of `text`, or `None` when it is no valid
    /// date (it is then kept as text).
    pub(crate) fn from_yaml(text: &str) -> Option<Moment> {
        static RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
            Regex::new(
                r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?(?:[ \t]*(Z|([-+])([0-9]{1,2})(?::([0-9]{2}))?))?)?$",
            )
            .ok()
        });
        let caps = RE.as_ref()?.captures(text)?;
        let num = |i: usize| -> Option<u32> { caps.get(i)?.as_str().parse().ok() };
        let date = NaiveDate::from_ymd_opt(i32::try_from(num(1)?).ok()?, num(2)?, num(3)?)?;
        let Some(hour) = num(4) else {
            return Some(Moment::Date(date));
        };
        let micros = caps.get(7).map_or(Some(0), |f| {
            let digits: String = f.as_str().chars().chain("000000".chars()).take(6).collect();
            digits.parse::<u32>().ok()
        })?;
        let time = NaiveTime::from_hms_micro_opt(hour, num(5)?, num(6)?, micros)?;
        let offset = match caps.get(8).map(|m| m.as_str()) {
            None => None,
            Some("Z") => FixedOffset::east_opt(0),
            Some(_) => {
                let seconds = i32::try_from(num(10)? * 3600 + num(11).unwrap_or(0) * 60).ok()?;
                let sign = if caps.get(9).map(|m| m.as_str()) == Some("-") {
                    -1
                } else {
                    1
                };
                Some(FixedOffset::east_opt(sign * seconds)?)
            }
        };
        Some(Moment::DateTime(date.and_time(time), offset))
    }

    fn date(self) -> NaiveDate {
        match self {
            Moment::Date(d) => d,
            Moment::DateTime(dt, _) => dt.date(),
        }
    }

    /// Python's `isoformat(sep)`.
    fn isoformat(self, sep: &str) -> String {
        match self {
            Moment::Date(d) => d.format("%Y-%m-%d").to_string(),
            Moment::DateTime(dt, offset) => {
                let mut out = format!("{}{sep}{}", dt.format("%Y-%m-%d"), dt.format("%H:%M:%S"));
                let micros = dt.nanosecond() / 1000;
                if micros != 0 {
                    let _ = write!(out, ".{micros:06}");
                }
                if let Some(offset) = offset {
                    out.push_str(&python_offset(offset));
                }
                out
            }
        }
    }

    /// Python's `repr`: `datetime.date(2024, 1, 15)`.
    pub(crate) fn repr(self) -> String {
        match self {
            Moment::Date(d) => format!("datetime.date({}, {}, {})", d.year(), d.month(), d.day()),
            Moment::DateTime(dt, offset) => {
                let mut out = format!(
                    "datetime.datetime({}, {}, {}, {}, {}",
                    dt.year(),
                    dt.month(),
                    dt.day(),
                    dt.hour(),
                    dt.minute()
                );
                let micros = dt.nanosecond() / 1000;
                if dt.second() != 0 || micros != 0 {
                    let _ = write!(out, ", {}", dt.second());
                }
                if micros != 0 {
                    let _ = write!(out, ", {micros}");
                }
                match offset.map(|o| o.local_minus_utc()) {
                    None => {}
                    Some(0) => out.push_str(", tzinfo=datetime.timezone.utc"),
                    Some(seconds) => {
                        let _ = write!(
                            out,
                            ", tzinfo=datetime.timezone({})",
                            Timedelta(i64::from(seconds) * 1_000_000).repr()
                        );
                    }
                }
                out.push(')');
                out
            }
        }
    }

    /// The text `to_json` writes (Ansible's encoder: `isoformat()`).
    pub(crate) fn json_text(self) -> String {
        self.isoformat("T")
    }

    /// The microseconds since the epoch, for naive values and in UTC for aware ones.
    fn micros(self) -> Option<(i64, bool)> {
        match self {
            Moment::Date(_) => None,
            Moment::DateTime(dt, offset) => {
                let utc = dt
                    - chrono::Duration::seconds(i64::from(
                        offset.map_or(0, |o| o.local_minus_utc()),
                    ));
                Some((utc.and_utc().timestamp_micros(), offset.is_some()))
            }
        }
    }

    fn strftime(self, format: &str) -> Result<String, Error> {
        let mut out = String::new();
        let written = match self {
            Moment::Date(d) => write!(out, "{}", d.and_time(NaiveTime::MIN).format(format)),
            Moment::DateTime(dt, Some(offset)) => write!(
                out,
                "{}",
                dt.and_local_timezone(offset)
                    .single()
                    .map_or_else(|| dt.format(format), |t| t.format(format))
            ),
            Moment::DateTime(dt, None) => write!(out, "{}", dt.format(format)),
        };
        written.map_err(|_| invalid(format!("strftime: invalid format `{format}`")))?;
        Ok(out)
    }
}

/// `+HH:MM` (and `:SS` when there are seconds), as Python writes a UTC offset.
fn python_offset(offset: FixedOffset) -> String {
    let seconds = offset.local_minus_utc();
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    let mut out = format!("{sign}{:02}:{:02}", s / 3600, s % 3600 / 60);
    if s % 60 != 0 {
        let _ = write!(out, ":{:02}", s % 60);
    }
    out
}

impl Timedelta {
    fn parts(self) -> (i64, i64, i64) {
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let rest = self.0.rem_euclid(MICROS_PER_DAY);
        (days, rest / 1_000_000, rest % 1_000_000)
    }

    fn repr(self) -> String {
        let (days, seconds, micros) = self.parts();
        let mut fields = Vec::new();
        for (name, n) in [
            ("days", days),
            ("seconds", seconds),
            ("microseconds", micros),
        ] {
            if n != 0 {
                fields.push(format!("{name}={n}"));
            }
        }
        if fields.is_empty() {
            fields.push("0".to_owned());
        }
        format!("datetime.timedelta({})", fields.join(", "))
    }
}

impl fmt::Display for Timedelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, seconds, micros) = self.parts();
        if days != 0 {
            let plural = if days.abs() != 1 { "s" } else { "" };
            write!(f, "{days} day{plural}, ")?;
        }
        write!(
            f,
            "{}:{:02}:{:02}",
            seconds / 3600,
            seconds % 3600 / 60,
            seconds % 60
        )?;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.isoformat(" "))
    }
}

impl Object for Moment {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let date = self.date();
        let time = match **self {
            Moment::DateTime(dt, _) => Some(dt.time()),
            Moment::Date(_) => None,
        };
        Some(Value::from(match key.as_str()? {
            "year" => i64::from(date.year()),
            "month" => i64::from(date.month()),
            "day" => i64::from(date.day()),
            "hour" => i64::from(time?.hour()),
            "minute" => i64::from(time?.minute()),
            "second" => i64::from(time?.second()),
            "microsecond" => i64::from(time?.nanosecond() / 1000),
            "tzinfo" => {
                return match **self {
                    Moment::DateTime(_, Some(offset)) if offset.local_minus_utc() == 0 => {
                        Some(Value::from("UTC"))
                    }
                    Moment::DateTime(_, Some(offset)) => {
                        Some(Value::from(format!("UTC{}", python_offset(offset))))
                    }
                    Moment::DateTime(_, None) => Some(Value::from(())),
                    Moment::Date(_) => None,
                }
            }
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let arg = |i: usize| args.get(i).map(text).transpose();
        match method {
            "strftime" => {
                let format = arg(0)?.ok_or_else(|| invalid("strftime() takes a format"))?;
                self.strftime(&format).map(Value::from)
            }
            "isoformat" => Ok(Value::from(
                self.isoformat(arg(0)?.as_deref().unwrap_or("T")),
            )),
            "weekday" => Ok(Value::from(self.date().weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.date().weekday().number_from_monday())),
            "date" => Ok(Moment::Date(self.date()).value()),
            "toordinal" => Ok(Value::from(i64::from(self.date().num_days_from_ce()))),
            _ => Err(Error::new(
                minijinja::ErrorKind::UnknownMethod,
                format!("{} has no method named {method}", self.type_name()),
            )),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<Moment>()?;
        match (**self, *other) {
            (Moment::Date(a), Moment::Date(b)) => Some(a.cmp(&b)),
            (a @ Moment::DateTime(..), b @ Moment::DateTime(..)) => {
                let ((a, aware_a), (b, aware_b)) = (a.micros()?, b.micros()?);
                (aware_a == aware_b).then(|| a.cmp(&b))
            }
            _ => None,
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl Moment {
    /// Python's type name, for `type_debug`.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Moment::Date(_) => "date",
            Moment::DateTime(..) => "datetime",
        }
    }
}

impl Object for Timedelta {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let (days, seconds, micros) = self.parts();
        Some(Value::from(match key.as_str()? {
            "days" => days,
            "seconds" => seconds,
            "microseconds" => micros,
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "total_seconds" => Ok(Value::from(self.0 as f64 / 1e6)),
            _ => Err(Error::new(
                minijinja::ErrorKind::UnknownMethod,
                format!("timedelta has no method named {method}"),
            )),
        }
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.0 != 0
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        Some(self.0.cmp(&other.downcast_ref::<Timedelta>()?.0))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// The date, datetime or timedelta a template value holds.
pub(crate) enum Temporal {
    /// A date or datetime.
    Moment(Moment),
    /// A timedelta.
    Delta(Timedelta),
}

/// `value` as a date, datetime or timedelta, if it is one.
pub(crate) fn temporal(value: &Value) -> Option<Temporal> {
    let object = value.as_object()?;
    if let Some(m) = object.downcast_ref::<Moment>() {
        return Some(Temporal::Moment(*m));
    }
    object
        .downcast_ref::<Timedelta>()
        .map(|d| Temporal::Delta(*d))
}

/// Ansible's global `now(utc=False, fmt=None)`: the local time (or UTC) as a naive
/// datetime, or formatted with `strftime` when `fmt` is given.
pub(crate) fn now(utc: Option<bool>, fmt: Option<String>, kwargs: Kwargs) -> Result<Value, Error> {
    let utc = kwargs.get::<Option<bool>>("utc")?.or(utc).unwrap_or(false);
    let fmt = kwargs.get::<Option<String>>("fmt")?.or(fmt);
    kwargs.assert_all_used()?;
    let now = if utc {
        chrono::Utc::now().naive_utc()
    } else {
        chrono::Local::now().naive_local()
    };
    // Python's datetimes have microseconds.
    let now = now
        .with_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now);
    let moment = Moment::DateTime(now, None);
    match fmt.filter(|f| !f.is_empty()) {
        Some(fmt) => moment.strftime(&fmt).map(Value::from),
        None => Ok(moment.value()),
    }
}

/// `to_datetime(format='%Y-%m-%d %H:%M:%S')`: Python's `datetime.strptime`.
pub(crate) fn to_datetime(
    value: &Value,
    format: Option<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let format = kwargs
        .get::<Option<String>>("format")?
        .or(format)
        .unwrap_or_else(|| "%Y-%m-%d %H:%M:%S".to_owned());
    kwargs.assert_all_used()?;
    let input = text(value)?;
    strptime(&input, &format).map(Moment::value).ok_or_else(|| {
        invalid(format!(
            "to_datetime: time data `{input}` does not match format `{format}`"
        ))
    })
}

/// `datetime.strptime(text, format)`: fields the format lacks are those of
/// 1900-01-01 00:00:00; `%f` after a dot takes 1 to 6 digits of microseconds.
fn strptime(input: &str, format: &str) -> Option<Moment> {
    let format = format.replace(".%f", "%.f");
    let mut parsed = Parsed::new();
    parse(&mut parsed, input, StrftimeItems::new(&format)).ok()?;
    if parsed.year().is_none() && parsed.year_div_100().is_none() && parsed.year_mod_100().is_none()
    {
        parsed.set_year(1900).ok()?;
    }
    if parsed.month().is_none() && parsed.ordinal().is_none() {
        parsed.set_month(1).ok()?;
    }
    if parsed.day().is_none() && parsed.ordinal().is_none() {
        parsed.set_day(1).ok()?;
    }
    if parsed.hour_div_12().is_none() && parsed.hour_mod_12().is_none() {
        parsed.set_hour(0).ok()?;
    } else if parsed.hour_div_12().is_none() {
        parsed.set_ampm(false).ok()?;
    }
    if parsed.minute().is_none() {
        parsed.set_minute(0).ok()?;
    }
    if parsed.second().is_none() {
        parsed.set_second(0).ok()?;
    }
    let date = parsed.to_naive_date().ok()?;
    let time = parsed.to_naive_time().ok()?;
    let offset = parsed.offset().and_then(FixedOffset::east_opt);
    Some(Moment::DateTime(date.and_time(time), offset))
}

/// `left - right` as Python computes it: numbers as minijinja subtracts them; a date or
/// datetime minus another gives a timedelta, minus a timedelta an earlier one.
pub(crate) fn minus(left: &Value, right: &Value) -> Result<Value, Error> {
    for operand in [left, right] {
        if operand.is_undefined() {
            return Err(undefined_error(operand));
        }
    }
    match (temporal(left), temporal(right)) {
        (None, None) => numbers(left, right),
        (Some(Temporal::Moment(a)), Some(Temporal::Moment(b))) => match (a, b) {
            (Moment::Date(a), Moment::Date(b)) => Ok(delta((a - b).num_microseconds())),
            (a @ Moment::DateTime(..), b @ Moment::DateTime(..)) => {
                match (a.micros(), b.micros()) {
                    (Some((a, aware_a)), Some((b, aware_b))) if aware_a == aware_b => {
                        Ok(delta(a.checked_sub(b)))
                    }
                    _ => Err(invalid(
                        "can't subtract offset-naive and offset-aware datetimes",
                    )),
                }
            }
            _ => Err(unsupported(left, right)),
        },
        (Some(Temporal::Moment(m)), Some(Temporal::Delta(d))) => {
            let shift = chrono::Duration::microseconds(d.0);
            match m {
                Moment::Date(date) => {
                    // Python keeps only whole days of the timedelta for a date.
                    let days = chrono::Duration::days(d.0.div_euclid(MICROS_PER_DAY));
                    date.checked_sub_signed(days)
                        .map(|d| Moment::Date(d).value())
                        .ok_or_else(|| invalid("date value out of range"))
                }
                Moment::DateTime(dt, offset) => dt
                    .checked_sub_signed(shift)
                    .map(|dt| Moment::DateTime(dt, offset).value())
                    .ok_or_else(|| invalid("date value out of range")),
            }
        }
        (Some(Temporal::Delta(a)), Some(Temporal::Delta(b))) => Ok(delta(a.0.checked_sub(b.0))),
        _ => Err(unsupported(left, right)),
    }
}

fn delta(micros: Option<i64>) -> Value {
    Value::from_object(Timedelta(micros.unwrap_or(i64::MAX)))
}

fn unsupported(left: &Value, right: &Value) -> Error {
    invalid(format!(
        "unsupported operand types for -: {} and {}",
        kind_name(left),
        kind_name(right)
    ))
}

fn kind_name(value: &Value) -> String {
    match temporal(value) {
        Some(Temporal::Moment(m)) => m.type_name().to_owned(),
        Some(Temporal::Delta(_)) => "timedelta".to_owned(),
        None => value.kind().to_string(),
    }
}

/// Subtraction of numbers (booleans count as 0 and 1), as minijinja does it.
fn numbers(left: &Value, right: &Value) -> Result<Value, Error> {
    let is_number = |v: &Value| matches!(v.kind(), ValueKind::Number | ValueKind::Bool);
    if !is_number(left) || !is_number(right) {
        return Err(unsupported(left, right));
    }
    let int = |v: &Value| -> Option<i128> {
        match v.kind() {
            ValueKind::Bool => Some(i128::from(v.is_true())),
            _ if v.is_integer() => i128::try_from(v.clone()).ok(),
            _ => None,
        }
    };
    if let (Some(a), Some(b)) = (int(left), int(right)) {
        return a
            .checked_sub(b)
            .map(|n| match i64::try_from(n) {
                Ok(small) => Value::from(small),
                Err(_) => Value::from(n),
            })
            .ok_or_else(|| invalid(format!("unable to calculate {left} - {right}")));
    }
    let float = |v: &Value| -> Result<f64, Error> {
        match v.kind() {
            ValueKind::Bool => Ok(if v.is_true() { 1.0 } else { 0.0 }),
            _ => f64::try_from(v.clone()),
        }
    };
    Ok(Value::from(float(left)? - float(right)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::tests::{render, try_render};

    // What `ansible.builtin.template` wrote (ansible-core 2.19.14, Jinja2 3.1.6), the
    // vars from a file: `d: 2024-01-15`, `dt: 2024-01-15 10:30:00`,
    // `dtz: 2024-01-15T10:30:00.5Z`.
    #[test]
    fn dates_from_yaml_print_and_subtract_as_in_python() {
        let vars = json!({
            "d": {"!!timestamp": "2024-01-15"},
            "dt": {"!!timestamp": "2024-01-15 10:30:00"},
            "dtz": {"!!timestamp": "2024-01-15T10:30:00.5Z"},
        });
        assert_eq!(
            render(
                "{{ d }}|{{ d | type_debug }}|{{ dt }}|{{ dtz }}|{{ [d, dt] }}",
                &vars
            ),
            "2024-01-15|date|2024-01-15 10:30:00|2024-01-15 10:30:00.500000+00:00|\
             [datetime.date(2024, 1, 15), datetime.datetime(2024, 1, 15, 10, 30)]"
        );
        assert_eq!(
            render(
                "{% set x = dt - ('2024-01-01 00:00:00' | to_datetime) %}{{ x }}|{{ x.days }}|{{ x.total_seconds() }}",
                &vars
            ),
            "14 days, 10:30:00|14|1247400.0"
        );
        assert_eq!(
            render(
                "{{ ('2024-01-01' | to_datetime('%Y-%m-%d')) - ('2024-03-01 12:00:01' | to_datetime) }}|{{ ('10:30' | to_datetime('%H:%M')) }}|{{ d.strftime('%d.%m.%Y') }}|{{ 10 - 3 }}|{{ 2.5 - 1 }}|{{ 1 - 2 - 3 }}",
                &vars
            ),
            "-61 days, 11:59:59|1900-01-01 10:30:00|15.01.2024|7|1.5|-4"
        );
        let err = try_render("{{ 'x' | to_datetime }}", &vars).expect_err("bad");
        assert!(err.to_string().contains("does not match format"), "{err}");
    }
}
