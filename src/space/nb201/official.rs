//! NB201's own identities of a cell: the official index NAS-Bench-201 and
//! NATS-Bench number cells by, and the `unique_str` key of their
//! isomorphism classes.
//!
//! The official order is AutoDL's `CellStructure.gen_all(NAS_BENCH_201, 4,
//! False)` — the base-5 order of [`Nb201Cell::code`], edge (0→1) most
//! significant — shuffled by CPython's `random.seed(88);
//! random.shuffle(archs)`. [`PythonRandom`] ports the two CPython functions
//! that shuffle needs (Mersenne Twister seeding by `init_by_array` and
//! `_randbelow`), so the table is computed, not shipped; a test checks all
//! 15,625 indices against the `arch_index` column of the shared table.

use super::{Nb201Cell, Nb201Op, NUM_CELLS};
use std::sync::OnceLock;

/// CPython's `random.Random`, as far as `seed(int)` and `shuffle` go.
pub struct PythonRandom {
    mt: [u32; 624],
    next: usize,
}

impl PythonRandom {
    const N: usize = 624;
    const M: usize = 397;

    /// `random.seed(seed)` for a non-negative int below 2³²: CPython seeds
    /// with `init_by_array` on the 32-bit words of the number.
    pub fn seed(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = 19_650_218;
        for i in 1..Self::N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        let key = [seed];
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..Self::N.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= Self::N {
                mt[0] = mt[Self::N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..Self::N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= Self::N {
                mt[0] = mt[Self::N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        PythonRandom { mt, next: Self::N }
    }

    /// `genrand_uint32`: the next 32 bits of the twister.
    pub fn next_u32(&mut self) -> u32 {
        if self.next >= Self::N {
            for k in 0..Self::N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % Self::N] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[k] = self.mt[(k + Self::M) % Self::N] ^ (y >> 1) ^ mag;
            }
            self.next = 0;
        }
        let mut y = self.mt[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `_randbelow(n)` for 1 ≤ n < 2³²: `getrandbits(n.bit_length())`
    /// redrawn until below `n`.
    pub fn below(&mut self, n: u32) -> u32 {
        let k = 32 - n.leading_zeros();
        loop {
            let r = self.next_u32() >> (32 - k);
            if r < n {
                return r;
            }
        }
    }

    /// `random.shuffle(items)` (Fisher–Yates from the end).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u32 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// `code → official index` and `official index → code`.
struct Tables {
    code_of_index: Vec<u16>,
    index_of_code: Vec<u16>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut code_of_index: Vec<u16> = (0..NUM_CELLS as u16).collect();
        PythonRandom::seed(88).shuffle(&mut code_of_index);
        let mut index_of_code = vec![0u16; NUM_CELLS];
        for (index, &code) in code_of_index.iter().enumerate() {
            index_of_code[code as usize] = index as u16;
        }
        Tables {
            code_of_index,
            index_of_code,
        }
    })
}

/// The official NB201 index of the cell with base-5 `code`.
pub(super) fn index_of_code(code: usize) -> usize {
    tables().index_of_code[code] as usize
}

/// The base-5 code of the cell with official index `index` (< 15,625).
pub(super) fn code_of_index(index: usize) -> usize {
    tables().code_of_index[index] as usize
}

/// NATS-Bench's `CellStructure.to_unique_str(consider_zero=True)`, quirks
/// included: an edge is zero (`#`) when its op is `none` or its source is
/// exactly `#`; `skip_connect` passes its source's string on; any other op
/// is `(source)@op`; a node is its edges' strings sorted and joined by `+`.
/// So a node with one zero input is `#` but a node with two or three is
/// `#+#` or `#+#+#`, which downstream edges do not treat as zero.
pub(super) fn unique_str(cell: &Nb201Cell) -> String {
    let mut nodes: Vec<String> = vec!["0".into()];
    let mut edge = 0;
    for target in 1..4 {
        let mut parts: Vec<String> = (0..target)
            .map(|source| {
                let op = cell.ops[edge + source];
                let from = &nodes[source];
                match op {
                    Nb201Op::None => "#".to_string(),
                    _ if from == "#" => "#".to_string(),
                    Nb201Op::SkipConnect => from.clone(),
                    _ => format!("({from})@{}", op.name()),
                }
            })
            .collect();
        edge += target;
        parts.sort();
        nodes.push(parts.join("+"));
    }
    nodes.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twister_matches_cpython() {
        // random.seed(88); [random.getrandbits(32) for _ in range(3)]
        let mut r = PythonRandom::seed(88);
        let first: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(first, CPYTHON_SEED88_FIRST3);
    }

    /// Written down from CPython 3.11 (`random.seed(88)`, three
    /// `getrandbits(32)`).
    const CPYTHON_SEED88_FIRST3: [u32; 3] = [1_707_201_716, 4_182_107_318, 813_946_014];

    #[test]
    fn index_tables_are_inverse_permutations() {
        for code in 0..NUM_CELLS {
            assert_eq!(code_of_index(index_of_code(code)), code);
        }
    }

    #[test]
    fn unique_str_of_known_cells() {
        let cell = Nb201Cell::parse(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        )
        .unwrap();
        assert_eq!(
            unique_str(&cell),
            "((0)@nor_conv_3x3)@avg_pool_3x3+(0)@nor_conv_3x3+((0)@nor_conv_3x3)@nor_conv_3x3+0"
        );
        // Two zero inputs make `#+#`, which node 3 does not treat as zero.
        let quirk =
            Nb201Cell::parse("|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|").unwrap();
        assert_eq!(unique_str(&quirk), "#+#+(#+#)@nor_conv_1x1");
    }
}
