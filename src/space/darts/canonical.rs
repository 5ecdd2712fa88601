//! The canonical form of a DARTS genotype: one string for every genotype
//! that builds the same network.
//!
//! Three things in a genotype string do not change the network:
//! - the order of a node's two edges (their results are summed);
//! - the numbering of the intermediate nodes, as far as it respects their
//!   dependencies (node 3 may be listed before node 2 when neither reads the
//!   other);
//! - the order of `concat` (it only permutes the output channels, which the
//!   next cell's 1×1 preprocessing and the classifier — randomly initialised
//!   — do not see).
//!
//! The canonical cell is the smallest, in a fixed order, of the cells
//! obtained from every renumbering of the intermediate nodes that keeps each
//! node after the nodes it reads, with each node's edges sorted and `concat`
//! sorted. The canonical genotype is itself a valid genotype string of an
//! equivalent network. Cells of more than [`MAX_PERMUTED`] nodes (never in
//! DARTS, which has 4) are only sorted, not renumbered.

use super::{DartsCell, DartsOp, Genotype};

/// Most intermediate nodes whose renumberings are all tried (8! = 40,320).
pub const MAX_PERMUTED: usize = 8;

fn op_rank(op: DartsOp) -> usize {
    DartsOp::ALL.iter().position(|&o| o == op).unwrap_or(0)
}

/// `cell` with its nodes renumbered by `order` (`order[p]`: the old node
/// at new position `p`), edges within a node and `concat` sorted.
fn renumbered(cell: &DartsCell, order: &[usize]) -> DartsCell {
    let mut new_pos = vec![0usize; order.len()];
    for (p, &old) in order.iter().enumerate() {
        new_pos[old] = p;
    }
    let state = |s: usize| if s < 2 { s } else { 2 + new_pos[s - 2] };
    let mut edges = Vec::with_capacity(cell.edges.len());
    for &old in order {
        let mut pair = [cell.edges[2 * old], cell.edges[2 * old + 1]];
        for e in pair.iter_mut() {
            e.1 = state(e.1);
        }
        pair.sort_by_key(|&(op, input)| (input, op_rank(op)));
        edges.extend(pair);
    }
    let mut concat: Vec<usize> = cell.concat.iter().map(|&s| state(s)).collect();
    concat.sort_unstable();
    DartsCell { edges, concat }
}

fn sort_key(cell: &DartsCell) -> (Vec<(usize, usize)>, Vec<usize>) {
    (
        cell.edges
            .iter()
            .map(|&(op, input)| (input, op_rank(op)))
            .collect(),
        cell.concat.clone(),
    )
}

/// Every order of the nodes that keeps each after the nodes it reads.
fn topological_orders(cell: &DartsCell) -> Vec<Vec<usize>> {
    let k = cell.steps();
    let reads: Vec<Vec<usize>> = (0..k)
        .map(|n| {
            [cell.edges[2 * n].1, cell.edges[2 * n + 1].1]
                .into_iter()
                .filter(|&s| s >= 2)
                .map(|s| s - 2)
                .collect()
        })
        .collect();
    fn walk(reads: &[Vec<usize>], placed: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if placed.len() == reads.len() {
            out.push(placed.clone());
            return;
        }
        for n in 0..reads.len() {
            if !placed.contains(&n) && reads[n].iter().all(|r| placed.contains(r)) {
                placed.push(n);
                walk(reads, placed, out);
                placed.pop();
            }
        }
    }
    let mut out = Vec::new();
    walk(&reads, &mut Vec::with_capacity(k), &mut out);
    out
}

/// The canonical form of one cell (module docs).
pub fn canonical_cell(cell: &DartsCell) -> DartsCell {
    let identity: Vec<usize> = (0..cell.steps()).collect();
    if cell.steps() > MAX_PERMUTED {
        return renumbered(cell, &identity);
    }
    topological_orders(cell)
        .iter()
        .map(|order| renumbered(cell, order))
        .min_by_key(sort_key)
        .unwrap_or_else(|| renumbered(cell, &identity))
}

/// The canonical genotype: both cells in canonical form.
pub fn canonical(g: &Genotype) -> Genotype {
    Genotype {
        normal: canonical_cell(&g.normal),
        reduce: canonical_cell(&g.reduce),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Genotype {
        Genotype::parse(s).unwrap()
    }

    const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

    #[test]
    fn equal_networks_get_one_key() {
        let a = g(DARTS_V2);
        // The two edges of the first normal node swapped, concat reversed.
        let b = g(&DARTS_V2
            .replacen(
                "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)",
                "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0)",
                1,
            )
            .replacen(
                "normal_concat=[2, 3, 4, 5]",
                "normal_concat=[5, 4, 3, 2]",
                1,
            ));
        assert_ne!(a, b);
        assert_eq!(canonical(&a), canonical(&b));
        // Nodes 2 and 3 of the normal cell (both reading only the inputs)
        // swapped: node 5 read state 2, so it now reads state 3.
        let c = g(&DARTS_V2.replacen(
            "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)",
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('dil_conv_3x3', 3)",
            1,
        ));
        assert_eq!(canonical(&a), canonical(&c));
        // The canonical genotype parses back to itself.
        let k = canonical(&a);
        assert_eq!(canonical(&g(&k.to_string())), k);
    }

    #[test]
    fn different_networks_keep_different_keys() {
        let a = g(DARTS_V2);
        // Node 5 reading node 4 instead of node 2 (nodes 2 and 3 are alike).
        let b = g(&DARTS_V2.replacen("('dil_conv_3x3', 2)", "('dil_conv_3x3', 4)", 1));
        assert_ne!(canonical(&a), canonical(&b));
    }
}
