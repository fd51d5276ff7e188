//! Python methods that role templates call and minijinja-contrib's `pycompat` lacks
//! (`list.index`, `str.ljust`, `str.zfill`, ...); everything else goes to `pycompat`.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use super::filters::invalid;

/// minijinja's unknown-method callback: these methods, then `pycompat`'s.
pub(crate) fn call(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let width = |i: usize| -> Result<usize, Error> {
        args.get(i)
            .and_then(Value::as_usize)
            .ok_or_else(|| invalid(format!("{method}() needs a width")))
    };
    let fill = || -> String {
        args.get(1)
            .and_then(|f| f.as_str())
            .unwrap_or(" ")
            .to_owned()
    };
    match (value.kind(), method) {
        (ValueKind::Seq, "index") => {
            let needle = args.first().cloned().unwrap_or_default();
            value
                .try_iter()?
                .position(|item| item == needle)
                .map(Value::from)
                .ok_or_else(|| invalid(format!("{needle} is not in list")))
        }
        (ValueKind::String, "ljust" | "rjust" | "center" | "zfill") => {
            let s = value.as_str().unwrap_or_default();
            let len = s.chars().count();
            let width = width(0)?;
            if len >= width {
                return Ok(value.clone());
            }
            let pad = width - len;
            let fill = if method == "zfill" {
                "0".to_owned()
            } else {
                fill()
            };
            Ok(Value::from(match method {
                "ljust" => format!("{s}{}", fill.repeat(pad)),
                "rjust" => format!("{}{s}", fill.repeat(pad)),
                "zfill" => match s.strip_prefix(['-', '+']) {
                    Some(rest) => format!("{}{}{rest}", &s[..1], fill.repeat(pad)),
                    None => format!("{}{s}", fill.repeat(pad)),
                },
                _ => {
                    let left = pad / 2 + (pad & width & 1);
                    format!("{}{s}{}", fill.repeat(left), fill.repeat(pad - left))
                }
            }))
        }
        _ => match minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
        {
            Err(e) if e.kind() == ErrorKind::UnknownMethod => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("{} has no method named {method}", value.kind()),
            )),
            other => other,
        },
    }
}
