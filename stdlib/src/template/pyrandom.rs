//! Python's `random.Random(seed)`: the Mersenne Twister seeded the way CPython seeds it,
//! so that `{{ 59 | random(seed=inventory_hostname) }}` (the usual way roles spread cron
//! jobs over an hour) and `shuffle(seed=...)` give each host the number Ansible gives it.

use sha2::{Digest, Sha512};

const N: usize = 624;
const M: usize = 397;

/// A seeded Mersenne Twister, as CPython's `_random.Random`.
pub(crate) struct PyRandom {
    state: [u32; N],
    index: usize,
}

/// What a seed can be: Python hashes a string seed with SHA-512 (version 2 seeding).
pub(crate) enum Seed<'a> {
    Int(i64),
    Text(&'a str),
}

impl PyRandom {
    /// `random.Random(seed)`.
    pub(crate) fn new(seed: Seed<'_>) -> PyRandom {
        let key: Vec<u32> = match seed {
            Seed::Int(i) => {
                let mut n = i.unsigned_abs();
                let mut words = Vec::new();
                while n > 0 {
                    words.push(n as u32);
                    n >>= 32;
                }
                words
            }
            Seed::Text(text) => {
                // int.from_bytes(text + sha512(text), 'big'), as 32-bit words, least
                // significant first.
                let mut bytes = text.as_bytes().to_vec();
                bytes.extend_from_slice(&Sha512::digest(text.as_bytes()));
                let mut words = Vec::new();
                let mut end = bytes.len();
                while end > 0 {
                    let start = end.saturating_sub(4);
                    let mut word = 0u32;
                    for b in &bytes[start..end] {
                        word = (word << 8) | u32::from(*b);
                    }
                    words.push(word);
                    end = start;
                }
                while words.len() > 1 && words.last() == Some(&0) {
                    words.pop();
                }
                words
            }
        };
        let key = if key.is_empty() { vec![0] } else { key };
        let mut random = PyRandom {
            state: [0; N],
            index: N,
        };
        random.init_by_array(&key);
        random
    }

    fn init_genrand(&mut self, seed: u32) {
        self.state[0] = seed;
        for i in 1..N {
            let prev = self.state[i - 1];
            self.state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.state[i - 1];
            self.state[i] = (self.state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.state[0] = self.state[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.state[i - 1];
            self.state[i] = (self.state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.state[0] = self.state[N - 1];
                i = 1;
            }
        }
        self.state[0] = 0x8000_0000;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.state[k] & 0x8000_0000) | (self.state[(k + 1) % N] & 0x7fff_ffff);
                let mut next = self.state[(k + M) % N] ^ (y >> 1);
                if y & 1 != 0 {
                    next ^= 0x9908_b0df;
                }
                self.state[k] = next;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `getrandbits(k)` for `k` up to 64.
    fn bits(&mut self, k: u32) -> u64 {
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        let low = u64::from(self.next_u32());
        let high = u64::from(self.next_u32() >> (64 - k));
        (high << 32) | low
    }

    /// `_randbelow(n)`: a number in `0..n`, by rejection as CPython draws it.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.bits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randrange(start, stop, step)`.
    pub(crate) fn randrange(&mut self, start: i64, stop: i64, step: i64) -> Option<i64> {
        let width = stop.checked_sub(start)?;
        if step == 1 {
            if width <= 0 {
                return None;
            }
            return Some(start + self.below(width as u64) as i64);
        }
        if step == 0 {
            return None;
        }
        let n = if step > 0 {
            (width + step - 1).div_euclid(step)
        } else {
            (width + step + 1).div_euclid(step)
        };
        if n <= 0 {
            return None;
        }
        Some(start + step * self.below(n as u64) as i64)
    }

    /// `shuffle(items)`, in place.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_what_cpython_draws() {
        // python3 -c 'import random; print([random.Random("web1").randrange(60),
        //   random.Random(42).randrange(100), random.Random("db").randrange(0, 3600, 60)])'
        let mut a = PyRandom::new(Seed::Text("web1"));
        let mut b = PyRandom::new(Seed::Int(42));
        let mut c = PyRandom::new(Seed::Text("db"));
        assert_eq!(a.randrange(0, 60, 1), Some(52));
        assert_eq!(b.randrange(0, 100, 1), Some(81));
        assert_eq!(c.randrange(0, 3600, 60), Some(1200));
        // l = [1, 2, 3, 4, 5]; random.Random("x").shuffle(l)
        let mut l = [1, 2, 3, 4, 5];
        PyRandom::new(Seed::Text("x")).shuffle(&mut l);
        assert_eq!(l, [5, 2, 1, 4, 3]);
    }
}
