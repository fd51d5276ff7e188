//! Ansible's `password_hash(hashtype='sha512', salt=None, salt_size=None, rounds=None,
//! ident=None)`: crypt(3) hashes for `/etc/shadow` and the `user` module, as
//! `ansible/plugins/filter/core.py` makes them through passlib (`utils/encrypt.py`):
//! `sha512` and `sha256` (SHA-crypt, 656000 and 535000 rounds unless `rounds` says
//! otherwise), `md5` (MD5-crypt) and `blowfish` (bcrypt, cost 12, ident `2b`).
//!
//! With an explicit `salt` the hash is the same as Ansible's, byte for byte; without one
//! the salt is random (as in Ansible), so the file changes on every run.
//!
//! SHA-crypt is RustCrypto's `sha-crypt` and bcrypt the `bcrypt` crate; MD5-crypt (which
//! no maintained crate has) is the 30 lines of Poul-Henning Kamp's algorithm below, over
//! RustCrypto's `md-5`. The output encoding is crypt's base64 (`base64ct`).

use base64ct::{Base64Bcrypt, Base64ShaCrypt, Encoding};
use md5::{Digest, Md5};
use minijinja::value::{Kwargs, Value};
use minijinja::Error;

use super::filters::{invalid, text};

/// The characters of a crypt salt.
const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// One of the four schemes, by its passlib name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Md5,
    Bcrypt,
    Sha256,
    Sha512,
}

impl Scheme {
    /// Ansible's names (`md5`, `blowfish`, `sha256`, `sha512`) and passlib's.
    fn named(name: &str) -> Option<Scheme> {
        Some(match name {
            "md5" | "md5_crypt" => Scheme::Md5,
            "blowfish" | "bcrypt" => Scheme::Bcrypt,
            "sha256" | "sha256_crypt" => Scheme::Sha256,
            "sha512" | "sha512_crypt" => Scheme::Sha512,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Md5 => "md5_crypt",
            Scheme::Bcrypt => "bcrypt",
            Scheme::Sha256 => "sha256_crypt",
            Scheme::Sha512 => "sha512_crypt",
        }
    }

    /// passlib's default salt size, and the largest salt it takes.
    fn salt_sizes(self) -> (usize, usize) {
        match self {
            Scheme::Md5 => (8, 8),
            Scheme::Bcrypt => (22, 22),
            Scheme::Sha256 | Scheme::Sha512 => (16, 16),
        }
    }
}

/// The filter.
pub(crate) fn password_hash(
    value: &Value,
    hashtype: Option<String>,
    salt: Option<Value>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let hashtype = kwargs
        .get::<Option<String>>("hashtype")?
        .or(hashtype)
        .unwrap_or_else(|| "sha512".to_owned());
    let salt = kwargs
        .get::<Option<Value>>("salt")?
        .or(salt)
        .filter(|s| s.is_true());
    let salt_size: Option<usize> = kwargs.get("salt_size")?;
    let rounds = kwargs.get::<Option<u32>>("rounds")?.filter(|&r| r != 0);
    let ident = kwargs
        .get::<Option<String>>("ident")?
        .filter(|i| !i.is_empty());
    kwargs.assert_all_used()?;
    let scheme = Scheme::named(&hashtype).ok_or_else(|| {
        invalid(format!(
            "password_hash: `{hashtype}` is not in the list of supported algorithms: md5, blowfish, sha256, sha512"
        ))
    })?;
    let secret = text(value)?;
    let salt = match salt {
        Some(salt) => checked_salt(scheme, &text(&salt)?)?,
        None => random_salt(salt_size.unwrap_or(scheme.salt_sizes().0))?,
    };
    match scheme {
        Scheme::Md5 => Ok(md5_crypt(secret.as_bytes(), &salt)),
        Scheme::Sha256 | Scheme::Sha512 => sha_crypt(scheme, secret.as_bytes(), &salt, rounds),
        Scheme::Bcrypt => bcrypt(secret.as_bytes(), &salt, rounds, ident.as_deref()),
    }
}

/// A given salt as passlib takes it: crypt's characters, no longer than the scheme's
/// (bcrypt's exactly 22).
fn checked_salt(scheme: Scheme, salt: &str) -> Result<String, Error> {
    let name = scheme.name();
    if !salt.bytes().all(|b| SALT_CHARS.contains(&b)) {
        return Err(invalid(format!(
            "password_hash: invalid characters in {name} salt `{salt}` (use ./0-9A-Za-z)"
        )));
    }
    let (_, max) = scheme.salt_sizes();
    if scheme == Scheme::Bcrypt && salt.len() != max {
        return Err(invalid(format!(
            "password_hash: bcrypt requires a salt of exactly 22 characters, not {}",
            salt.len()
        )));
    }
    if salt.len() > max {
        return Err(invalid(format!(
            "password_hash: salt too large ({name} requires <= {max} chars)"
        )));
    }
    Ok(salt.to_owned())
}

/// `size` random salt characters.
fn random_salt(size: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; size];
    getrandom::fill(&mut bytes)
        .map_err(|e| invalid(format!("password_hash: no random salt: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(SALT_CHARS[usize::from(b % 64)]))
        .collect())
}

/// `$1$salt$hash`: FreeBSD's MD5-crypt, as passlib's `md5_crypt` computes it.
fn md5_crypt(password: &[u8], salt: &str) -> String {
    let salt = salt.as_bytes();
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(b"$1$")
        .chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alternate[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round & 1 == 1 {
            ctx.update(password);
        } else {
            ctx.update(digest);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(password);
        }
        if round & 1 == 1 {
            ctx.update(digest);
        } else {
            ctx.update(password);
        }
        digest = ctx.finalize();
    }
    const ORDER: [usize; 16] = [12, 6, 0, 13, 7, 1, 14, 8, 2, 15, 9, 3, 5, 10, 4, 11];
    let bytes: Vec<u8> = ORDER.iter().map(|&i| digest[i]).collect();
    format!(
        "$1${}${}",
        String::from_utf8_lossy(salt),
        Base64ShaCrypt::encode_string(&bytes)
    )
}

/// `$5$` / `$6$`: SHA-crypt, `rounds=N$` written unless N is 5000 (passlib's way).
fn sha_crypt(
    scheme: Scheme,
    password: &[u8],
    salt: &str,
    rounds: Option<u32>,
) -> Result<String, Error> {
    let rounds = rounds.unwrap_or(if scheme == Scheme::Sha512 {
        656_000
    } else {
        535_000
    });
    let params = sha_crypt::Params::new(rounds).map_err(|_| {
        invalid(format!(
            "password_hash: rounds must be 1000-999999999 for {}, not {rounds}",
            scheme.name()
        ))
    })?;
    let (id, bytes) = if scheme == Scheme::Sha512 {
        // glibc's order of the 64 bytes in the encoded hash (`sha512-crypt.c`).
        const ORDER: [usize; 64] = [
            42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28,
            29, 8, 50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57,
            36, 15, 16, 58, 37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
        ];
        let raw = sha_crypt::sha512_crypt(password, salt.as_bytes(), params);
        ("6", ORDER.iter().map(|&i| raw[i]).collect::<Vec<u8>>())
    } else {
        // `sha256-crypt.c`'s order of the 32 bytes.
        const ORDER: [usize; 32] = [
            20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27,
            8, 28, 18, 29, 19, 9, 30, 31,
        ];
        let raw = sha_crypt::sha256_crypt(password, salt.as_bytes(), params);
        ("5", ORDER.iter().map(|&i| raw[i]).collect::<Vec<u8>>())
    };
    let rounds_field = if rounds == 5000 {
        String::new()
    } else {
        format!("rounds={rounds}$")
    };
    Ok(format!(
        "${id}${rounds_field}{salt}${}",
        Base64ShaCrypt::encode_string(&bytes)
    ))
}

/// `$2b$12$salt+hash`: bcrypt, the password cut at 72 bytes as passlib does. The salt's
/// last character carries 4 unused bits, which passlib clears (`bcrypt64.repair_unused`).
fn bcrypt(
    password: &[u8],
    salt: &str,
    rounds: Option<u32>,
    ident: Option<&str>,
) -> Result<String, Error> {
    let cost = rounds.unwrap_or(12);
    if !(4..=31).contains(&cost) {
        return Err(invalid(format!(
            "password_hash: rounds must be 4-31 for bcrypt, not {cost}"
        )));
    }
    let version = match ident.unwrap_or("2b") {
        "2a" => bcrypt::Version::TwoA,
        "2b" => bcrypt::Version::TwoB,
        "2x" => bcrypt::Version::TwoX,
        "2y" => bcrypt::Version::TwoY,
        other => {
            return Err(invalid(format!(
                "password_hash: bcrypt ident `{other}` is not supported by toyc (2a, 2b, 2x, 2y)"
            )))
        }
    };
    let mut repaired = salt.as_bytes().to_vec();
    if let Some(last) = repaired.last_mut() {
        let alphabet = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let index = alphabet.iter().position(|c| c == last).unwrap_or(0);
        *last = alphabet[index & 0x30];
    }
    let mut raw = [0u8; 16];
    Base64Bcrypt::decode(&repaired, &mut raw)
        .map_err(|e| invalid(format!("password_hash: bcrypt salt `{salt}`: {e}")))?;
    let parts = bcrypt::hash_with_salt(password, cost, raw)
        .map_err(|e| invalid(format!("password_hash: {e}")))?;
    Ok(parts.format_for_version(version))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::tests::{render, try_render};

    // What `ansible.builtin.template` wrote (ansible-core 2.19.14, passlib 1.7.4).
    #[test]
    fn hashes_with_a_salt_are_ansibles() {
        let vars = json!({});
        for (template, hash) in [
            ("{{ 'secret' | password_hash('sha512', 'mysalt', rounds=5000) }}",
             "$6$mysalt$UX6P1VKOf6dr0s2pg4pLNvIUB6hLXvP6M5f/Yj9hJgMPdAJ4oArvk5YUD9/XWtk1JOpVwt/JTsczMJr8sFVML1"),
            ("{{ 'secret' | password_hash('sha512', 'saltsaltsaltsalt', rounds=10000) }}",
             "$6$rounds=10000$saltsaltsaltsalt$JfKXl4x07umbXIGXrz4jYnDtZt8fIFlNSby2poRKPSFD4PbiQHTxb2NLQPGuaML.ZXPWXKfgxibKFGp.yXoha."),
            ("{{ 'secret' | password_hash('sha256', 'abc', rounds=5000) }}",
             "$5$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPaeDcZe6vH0"),
            ("{{ 'secret' | password_hash('md5', 'saltsalt') }}", "$1$saltsalt$9xy1btjgzLYfb7hivXtC//"),
            ("{{ 'secret' | password_hash('md5', 'ab') }}", "$1$ab$dslkcXxVH.x8LwW1W/oAB/"),
            ("{{ 'secret' | password_hash('bcrypt', 'abcdefghijklmnopqrstuv', rounds=4) }}",
             "$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"),
            ("{{ 'secret' | password_hash('blowfish', '1234567890123456789012', ident='2a', rounds=5) }}",
             "$2a$05$123456789012345678901u.97m5mwuxOR3RvRKYm9sasohx5Mnzwq"),
        ] {
            assert_eq!(render(template, &vars), hash, "{template}");
        }
        let random = render("{{ 'secret' | password_hash('md5') }}", &vars);
        assert!(random.starts_with("$1$") && random.len() == 34, "{random}");
        for (template, why) in [
            (
                "{{ 'x' | password_hash('sha512', 'a$b') }}",
                "invalid characters",
            ),
            (
                "{{ 'x' | password_hash('sha512', 'aaaaaaaaaaaaaaaaa') }}",
                "salt too large",
            ),
            ("{{ 'x' | password_hash('bcrypt', 'abc') }}", "exactly 22"),
            (
                "{{ 'x' | password_hash('sha512', 'a', rounds=999) }}",
                "rounds must be",
            ),
            ("{{ 'x' | password_hash('argon2') }}", "not in the list"),
        ] {
            let err = try_render(template, &vars).expect_err(template).to_string();
            assert!(err.contains(why), "{template}: {err}");
        }
    }
}
