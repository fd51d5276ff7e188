//! Permission bits and ownership: what scripts ask for (`mode`, `owner`, `group`), how
//! that compares with what `stat` found, and the shell that fixes the difference.

use super::user::account_name;
use toyc_engine::transport::quote;

/// Written where an owner, group or mode is not known in advance (a file created by the
/// apply step belongs to whoever applies it); never equal to a name `stat` prints.
pub const UNKNOWN: &str = "?";

/// Permission bits, as octal (`0644`, `644`, `1777`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub(crate) u32);

impl Mode {
    /// Parse 3 or 4 octal digits; symbolic modes (`u=rw`) are not accepted because they
    /// are relative to the current mode and so cannot be compared before applying.
    pub fn parse(text: &str) -> Result<Mode, String> {
        let digits = text.trim();
        let valid =
            (3..=4).contains(&digits.len()) && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
        if !valid {
            return Err(format!(
                "`{text}` is not a mode: give 3 or 4 octal digits, like \"0644\" or \"755\""
            ));
        }
        u32::from_str_radix(digits, 8)
            .map(Mode)
            .map_err(|e| format!("`{text}` is not a mode: {e}"))
    }

    /// The mode `stat -c %a` printed, if it is one.
    pub fn from_stat(text: &str) -> Option<Mode> {
        u32::from_str_radix(text, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Mode)
    }

    /// The bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The umask under which a new file gets exactly this mode (creation mode 0666 minus
    /// the umask), so creating it needs no `chmod` process; `None` for modes with execute
    /// or special bits, which only `chmod` gives a file.
    pub fn creation_umask(self) -> Option<String> {
        (self.0 & !0o666 == 0).then(|| format!("{:04o}", !self.0 & 0o777))
    }

    /// As `stat -c %a` prints it (`644`, `1777`), so recorded facts look like asked ones.
    pub fn stat_form(self) -> String {
        format!("{:o}", self.0)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:03o}", self.0)
    }
}

/// The mode, owner and group an operation wants; `None` leaves that one alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits.
    pub mode: Option<Mode>,
    /// Owner's user name (as `stat -c %U` prints it, so names rather than numeric ids).
    pub owner: Option<String>,
    /// Group name.
    pub group: Option<String>,
}

/// What `stat` found on the host: mode, owner and group as printed.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    /// `stat -c %a`.
    pub mode: &'a str,
    /// `stat -c %U`.
    pub owner: &'a str,
    /// `stat -c %G`.
    pub group: &'a str,
}

/// Check a user or group name (`what`): not empty, no whitespace, no `:` (chown syntax).
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
        return Err(format!("`{name}` is not a valid {what} name"));
    }
    Ok(())
}

/// Check an owner or group (`what`) for `chown` and `chgrp`: a numeric id, or a name
/// as `useradd` takes it ([`account_name`]). Nothing else reaches those commands, where
/// `--reference=/etc/shadow` would be an option, not a name.
pub fn owner_name(what: &str, name: &str) -> Result<(), String> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    account_name(what, name).map_err(|_| {
        format!(
            "`{}` is not a valid {what} name: use a name (letters, digits, `.`, `_` and `-`, \
             not first) or a numeric id",
            name.escape_debug()
        )
    })
}

impl Attrs {
    /// Attributes to ask for, with owner and group names checked ([`owner_name`]).
    pub fn new(
        mode: Option<Mode>,
        owner: Option<String>,
        group: Option<String>,
    ) -> Result<Attrs, String> {
        for (what, name) in [("owner", &owner), ("group", &group)] {
            if let Some(name) = name {
                owner_name(what, name)?;
            }
        }
        Ok(Attrs { mode, owner, group })
    }

    /// The differences from `current`, for people: `mode 600 -> 644`, `owner root -> app`.
    pub fn differences(&self, current: Current<'_>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(mode) = self.mode {
            if Mode::from_stat(current.mode) != Some(mode) {
                out.push(format!("mode {} -> {mode}", current.mode));
            }
        }
        for (what, want, have) in [
            ("owner", &self.owner, current.owner),
            ("group", &self.group, current.group),
        ] {
            if let Some(want) = want {
                if want != have {
                    out.push(format!("{what} {have} -> {want}"));
                }
            }
        }
        out
    }

    /// `chmod`/`chown`/`chgrp` lines for every attribute asked for, on `path` (which may
    /// be a shell expression such as `"$tmp"`, hence not quoted here).
    pub fn commands(&self, path_word: &str) -> String {
        let mut script = String::new();
        if let Some(mode) = self.mode {
            script.push_str(&format!("chmod {} {path_word}\n", mode.stat_form()));
        }
        script.push_str(&self.ownership_commands(path_word));
        script
    }

    /// The `chown`/`chgrp` lines of [`Attrs::commands`] alone, for a change that gives
    /// the mode some other way.
    pub fn ownership_commands(&self, path_word: &str) -> String {
        self.ownership_or_undo(path_word, None)
    }

    /// [`Attrs::commands`] for something the same script just created, which `undo`
    /// removes when an attribute cannot be given: a file whose owner does not exist
    /// must not be left behind, owned by whoever ran the step.
    pub fn commands_for_new(&self, path_word: &str, undo: &str) -> String {
        let mut script = String::new();
        if let Some(mode) = self.mode {
            script.push_str(&format!(
                "chmod {} {path_word} || {{ {undo}; exit 1; }}\n",
                mode.stat_form()
            ));
        }
        script.push_str(&self.ownership_or_undo(path_word, Some(undo)));
        script
    }

    /// The `chown`/`chgrp` lines of [`Attrs::commands_for_new`] alone.
    pub fn ownership_for_new(&self, path_word: &str, undo: &str) -> String {
        self.ownership_or_undo(path_word, Some(undo))
    }

    fn ownership_or_undo(&self, path_word: &str, undo: Option<&str>) -> String {
        let on_failure = undo.map_or(String::new(), |undo| format!(" || {{ {undo}; exit 1; }}"));
        let mut script = String::new();
        if let Some(owner) = &self.owner {
            script.push_str(&format!("chown {} {path_word}{on_failure}\n", quote(owner)));
        }
        if let Some(group) = &self.group {
            script.push_str(&format!("chgrp {} {path_word}{on_failure}\n", quote(group)));
        }
        script
    }

    /// The state after applying: asked-for values, else `current` (else [`UNKNOWN`]).
    pub fn after(&self, current: Option<Current<'_>>) -> (String, String, String) {
        let mode = match (self.mode, current) {
            (Some(mode), _) => mode.stat_form(),
            (None, Some(c)) => c.mode.to_owned(),
            (None, None) => UNKNOWN.to_owned(),
        };
        let pick = |want: &Option<String>, have: Option<&str>| {
            want.clone()
                .or_else(|| have.map(str::to_owned))
                .unwrap_or_else(|| UNKNOWN.to_owned())
        };
        (
            mode,
            pick(&self.owner, current.map(|c| c.owner)),
            pick(&self.group, current.map(|c| c.group)),
        )
    }

    /// For a no-change reason: ` with mode 600, owner root` (empty when nothing was asked).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(mode) = self.mode {
            parts.push(format!("mode {mode}"));
        }
        if let Some(owner) = &self.owner {
            parts.push(format!("owner {owner}"));
        }
        if let Some(group) = &self.group {
            parts.push(format!("group {group}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" with {}", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_three_or_four_octal_digits() {
        assert_eq!(Mode::parse("0644").unwrap().bits(), 0o644);
        assert_eq!(Mode::parse("644").unwrap().bits(), 0o644);
        assert_eq!(Mode::parse("1777").unwrap().stat_form(), "1777");
        assert_eq!(Mode::parse("0600").unwrap().to_string(), "600");
        for bad in ["999", "64", "u=rw", "", "07777x", "12345"] {
            let err = Mode::parse(bad).unwrap_err();
            assert!(err.contains("is not a mode"), "{bad}: {err}");
        }
    }

    #[test]
    fn stat_output_compares_by_value() {
        assert_eq!(Mode::from_stat("644"), Mode::parse("0644").ok());
        assert_eq!(Mode::from_stat("0"), Some(Mode(0)));
        assert_eq!(Mode::from_stat("?"), None);
    }

    #[test]
    fn differences_name_only_what_was_asked() {
        let attrs = Attrs::new(Mode::parse("0600").ok(), Some("app".into()), None).unwrap();
        let current = Current {
            mode: "644",
            owner: "root",
            group: "wheel",
        };
        assert_eq!(
            attrs.differences(current),
            ["mode 644 -> 600", "owner root -> app"]
        );
        assert_eq!(attrs.describe(), " with mode 600, owner app");
        assert_eq!(
            attrs.after(Some(current)),
            ("600".into(), "app".into(), "wheel".into())
        );
        assert_eq!(
            attrs.after(None),
            ("600".into(), "app".into(), UNKNOWN.into())
        );
    }

    #[test]
    fn bad_names_are_refused() {
        let err = Attrs::new(None, Some("a b".into()), None).unwrap_err();
        assert!(err.starts_with("`a b` is not a valid owner name"), "{err}");
        for bad in ["--reference=/etc/shadow", "-1", "", "a/b"] {
            assert!(Attrs::new(None, Some(bad.into()), None).is_err(), "{bad:?}");
        }
        assert!(Attrs::new(None, Some("1000".into()), Some("www-data".into())).is_ok());
        assert!(Attrs::new(None, None, Some("x:y".into())).is_err());
    }
}
