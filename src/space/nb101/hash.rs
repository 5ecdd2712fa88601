//! NB101's module hash (`graph_util.hash_module` of the NASBench code),
//! the key NB101's dataset files and API index cells by.
//!
//! The hash is a Weisfeiler–Lehman-style fingerprint in md5 over Python
//! strings, reproduced byte for byte:
//! - each vertex starts as md5 of Python's repr of the tuple
//!   `(out_degree, in_degree, label)`, e.g. `"(2, 0, -1)"`, with labels
//!   −1 input, −2 output, 0 `conv3x3-bn-relu`, 1 `conv1x1-bn-relu`,
//!   2 `maxpool3x3`;
//! - V times (V vertices), every vertex becomes md5 of its in-neighbours'
//!   hashes sorted and concatenated, `|`, its out-neighbours' likewise, `|`,
//!   its own hash;
//! - the module is md5 of Python's repr of the sorted list of vertex hashes,
//!   `"['…', '…']"`.
//!
//! Hashes are lowercase hex digests (32 ASCII bytes) throughout, as
//! `hexdigest()` gives them.

use md5::{Digest, Md5};

/// A lowercase hex md5 digest, as Python's `hexdigest()`.
pub type Hex = [u8; 32];

fn hex_md5(data: &[u8]) -> Hex {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let d = Md5::digest(data);
    let mut out = [0u8; 32];
    for (k, byte) in d.iter().enumerate() {
        out[2 * k] = DIGITS[(byte >> 4) as usize];
        out[2 * k + 1] = DIGITS[(byte & 15) as usize];
    }
    out
}

/// The module hash of an adjacency matrix (`adj[i][j]`: edge i→j, upper
/// triangular) and its vertex labels (−1 input, −2 output, 0..=2 the
/// interior ops in NB101's `canonical_ops` order).
pub fn module_hash(adj: &[Vec<bool>], labels: &[i8]) -> String {
    let n = labels.len();
    let mut buf: Vec<u8> = Vec::with_capacity(2 * 32 * n + 40);
    let mut hashes: Vec<Hex> = (0..n)
        .map(|v| {
            let out_deg = (0..n).filter(|&w| adj[v][w]).count();
            let in_deg = (0..n).filter(|&w| adj[w][v]).count();
            buf.clear();
            use std::io::Write;
            // Python's repr of a tuple of ints.
            let _ = write!(buf, "({out_deg}, {in_deg}, {})", labels[v]);
            hex_md5(&buf)
        })
        .collect();
    let mut next = hashes.clone();
    let mut ins: Vec<Hex> = Vec::with_capacity(n);
    let mut outs: Vec<Hex> = Vec::with_capacity(n);
    for _ in 0..n {
        for v in 0..n {
            ins.clear();
            outs.clear();
            ins.extend((0..n).filter(|&w| adj[w][v]).map(|w| hashes[w]));
            outs.extend((0..n).filter(|&w| adj[v][w]).map(|w| hashes[w]));
            ins.sort_unstable();
            outs.sort_unstable();
            buf.clear();
            for h in &ins {
                buf.extend_from_slice(h);
            }
            buf.push(b'|');
            for h in &outs {
                buf.extend_from_slice(h);
            }
            buf.push(b'|');
            buf.extend_from_slice(&hashes[v]);
            next[v] = hex_md5(&buf);
        }
        std::mem::swap(&mut hashes, &mut next);
    }
    hashes.sort_unstable();
    // Python's repr of a list of str: ['a', 'b'].
    buf.clear();
    buf.push(b'[');
    for (k, h) in hashes.iter().enumerate() {
        if k > 0 {
            buf.extend_from_slice(b", ");
        }
        buf.push(b'\'');
        buf.extend_from_slice(h);
        buf.push(b'\'');
    }
    buf.push(b']');
    String::from_utf8_lossy(&hex_md5(&buf)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[[u8; 7]; 7]) -> Vec<Vec<bool>> {
        rows.iter()
            .map(|r| r.iter().map(|&b| b == 1).collect())
            .collect()
    }

    #[test]
    fn the_nasbench_test_vector() {
        // A NASBench spec whose module hash is known: 00005c14….
        let adj = matrix(&[
            [0, 1, 0, 0, 1, 1, 0],
            [0, 0, 1, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 1],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ]);
        let labels = [-1, 0, 2, 0, 0, 1, -2];
        assert_eq!(
            module_hash(&adj, &labels),
            "00005c142e6f48ac74fdcf73e3439874"
        );
    }

    #[test]
    fn python_reprs() {
        // hashlib.md5(str((1, 0, -1)).encode()).hexdigest()
        assert_eq!(&hex_md5(b"(1, 0, -1)"), PY_MD5_TUPLE);
    }

    const PY_MD5_TUPLE: &[u8; 32] = b"3bb65a81afada4c50c2c4630873f0a79";
}
