//! Reading the option maps scripts pass (`#{ sudo: true, timeout: 5 }`): each key checked
//! against the ones the function knows, so a typo is an error and not a silent default.

use rhai::{Dynamic, EvalAltResult, Map};

/// The options one call received, already checked for unknown keys.
pub(crate) struct Options<'a> {
    function: &'static str,
    map: &'a Map,
}

type Fail = Box<EvalAltResult>;

impl<'a> Options<'a> {
    /// Check `map` against `known` keys of `function`.
    pub(crate) fn new(
        function: &'static str,
        map: &'a Map,
        known: &[&str],
    ) -> Result<Options<'a>, Fail> {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let close = known
                    .iter()
                    .filter(|k| strsim::jaro_winkler(k, key) > 0.8)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .next()
                    .unwrap_or_default();
                return Err(format!(
                    "`{function}` has no option `{key}` (options: {}){close}",
                    known.join(", ")
                )
                .into());
            }
        }
        Ok(Options { function, map })
    }

    fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    fn wrong(&self, key: &str, wanted: &str, got: &Dynamic) -> Fail {
        format!(
            "option `{key}` of `{}` must be {wanted}, not {} `{got}`",
            self.function,
            got.type_name()
        )
        .into()
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, Fail> {
        self.get(key)
            .map(|v| v.as_bool().map_err(|_| self.wrong(key, "true or false", v)))
            .transpose()
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, Fail> {
        self.get(key)
            .map(|v| {
                // Integers are accepted as strings: `mode: 644` is what people type.
                if v.is_string() || v.is_int() {
                    Ok(v.to_string())
                } else {
                    Err(self.wrong(key, "a string", v))
                }
            })
            .transpose()
    }

    /// A whole number, zero or more.
    pub(crate) fn count(&self, key: &str) -> Result<Option<u64>, Fail> {
        self.get(key)
            .map(|v| {
                v.as_int()
                    .ok()
                    .and_then(|i| u64::try_from(i).ok())
                    .ok_or_else(|| self.wrong(key, "a whole number, zero or more", v))
            })
            .transpose()
    }

    /// A non-negative integer that fits 32 bits (a uid or gid); digits in a string too.
    pub(crate) fn id(&self, key: &str) -> Result<Option<u32>, Fail> {
        self.get(key)
            .map(|v| {
                let number = if v.is_int() {
                    v.as_int().ok().and_then(|i| u32::try_from(i).ok())
                } else if v.is_string() {
                    v.to_string().parse::<u32>().ok()
                } else {
                    None
                };
                number.ok_or_else(|| self.wrong(key, "a number from 0 to 4294967295", v))
            })
            .transpose()
    }

    /// A list of strings: an array of strings, or one string of comma-separated items
    /// (`"adm,staff"`, as Ansible takes it too). `Some(empty)` for `[]` or `""`.
    pub(crate) fn strings(&self, key: &str) -> Result<Option<Vec<String>>, Fail> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        string_list(v)
            .map(Some)
            .map_err(|()| self.wrong(key, "an array of strings", v))
    }

    /// Seconds, as an integer or a decimal.
    pub(crate) fn seconds(&self, key: &str) -> Result<Option<std::time::Duration>, Fail> {
        self.get(key)
            .map(|v| {
                let secs = v
                    .as_int()
                    .map(|i| i as f64)
                    .or_else(|_| v.as_float())
                    .map_err(|_| self.wrong(key, "a number of seconds", v))?;
                std::time::Duration::try_from_secs_f64(secs)
                    .map_err(|_| self.wrong(key, "a positive number of seconds", v))
            })
            .transpose()
    }

    /// A map of strings (environment variables).
    pub(crate) fn string_map(&self, key: &str) -> Result<Vec<(String, String)>, Fail> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let map = v
            .read_lock::<Map>()
            .ok_or_else(|| self.wrong(key, "a map", v))?;
        Ok(map
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// `value` as a list of strings: an array of strings, or one string of comma-separated
/// items (blank items dropped).
pub(crate) fn string_list(value: &Dynamic) -> Result<Vec<String>, ()> {
    if value.is_string() {
        return Ok(value
            .to_string()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect());
    }
    let items = value.read_lock::<rhai::Array>().ok_or(())?;
    items
        .iter()
        .map(|item| {
            if item.is_string() {
                Ok(item.to_string())
            } else {
                Err(())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_with_a_suggestion() {
        let mut map = Map::new();
        map.insert("sduo".into(), true.into());
        let err = Options::new("host::exec", &map, &["sudo", "timeout"])
            .err()
            .expect("unknown key");
        assert!(err.to_string().contains("did you mean `sudo`?"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_option() {
        let mut map = Map::new();
        map.insert("sudo".into(), "yes".into());
        let options = Options::new("host::exec", &map, &["sudo"]).expect("known key");
        let err = options.bool("sudo").expect_err("wrong type");
        assert!(
            err.to_string()
                .contains("option `sudo` of `host::exec` must be true or false"),
            "{err}"
        );
    }
}
