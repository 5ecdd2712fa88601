//! Tests of the elementwise add: the CPU forward sums in input order and in
//! place at every position the same bits, across the parallel chunks; and
//! the CUDA kernels (host emulation, or a GPU) against the CPU bit for bit
//! (a NaN matches any NaN), aligned and not, in place at every position.

use crate::ops::add;
use crate::ops::add::cpu::{add_forward, add_forward_inplace};
use crate::ops::tests::{
    assert_bitwise_nan, download_at, poisoned, poisoned_at, upload_at, view, view_mut,
};
use crate::runtime::cuda::{CudaDevice, DeviceBuffer};
use crate::tensor::{Shape, Tensor};
use crate::testing::{upload, Rng, POISON};
use crate::Error;

#[test]
fn add_sums_in_input_order() {
    let mut rng = Rng(13);
    let s = Shape::new(2, 5, 3, 7);
    let ts: Vec<Tensor> = (0..4).map(|_| rng.tensor(s)).collect();
    for k in 1..=4 {
        let refs: Vec<&Tensor> = ts[..k].iter().collect();
        let mut y = poisoned(s);
        add_forward(&refs, &mut y).unwrap();
        for i in 0..s.len() {
            let mut want = ts[0].data[i];
            for t in &ts[1..k] {
                want += t.data[i];
            }
            assert_eq!(y.data[i].to_bits(), want.to_bits(), "k={k} i={i}");
        }
    }
    let mut y = poisoned(s);
    assert!(matches!(add_forward(&[], &mut y), Err(Error::Shape(m)) if m.contains("no inputs")));
    let other = Tensor::zeros(Shape::new(2, 5, 3, 6));
    assert!(matches!(
        add_forward(&[&ts[0], &other], &mut y),
        Err(Error::Shape(m)) if m.contains("input 1")
    ));
    let mut bad = poisoned(Shape::new(2, 5, 3, 6));
    assert!(matches!(
        add_forward(&[&ts[0]], &mut bad),
        Err(Error::Shape(_))
    ));
}

/// In-place add at every position equals the out-of-place add bit for bit,
/// on a size that crosses the parallel-chunk and block boundaries.
#[test]
fn add_inplace_matches_add_forward() {
    let mut rng = Rng(17);
    let s = Shape::new(3, 37, 29, 23); // 74,037 values: > one 65,536 chunk
    let ts: Vec<Tensor> = (0..4).map(|_| rng.tensor(s)).collect();
    for k in 1..=4 {
        let refs: Vec<&Tensor> = ts[..k].iter().collect();
        let mut want = poisoned(s);
        add_forward(&refs, &mut want).unwrap();
        for pos in 0..k {
            let mut acc = ts[pos].clone();
            let others: Vec<&Tensor> = (0..k).filter(|&j| j != pos).map(|j| &ts[j]).collect();
            add_forward_inplace(&mut acc, pos, &others).unwrap();
            let same = acc
                .data
                .iter()
                .zip(&want.data)
                .all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "k={k} pos={pos}");
        }
    }
    let mut acc = ts[0].clone();
    assert!(matches!(
        add_forward_inplace(&mut acc, 2, &[&ts[1]]),
        Err(Error::Arg(_))
    ));
    let other = Tensor::zeros(Shape::new(3, 37, 29, 22));
    assert!(matches!(
        add_forward_inplace(&mut acc, 0, &[&other]),
        Err(Error::Shape(_))
    ));
}

gpu_test!(add_is_bit_identical);
fn add_is_bit_identical(dev: &CudaDevice) {
    let mut rng = Rng(12);
    for len in [1usize, 3, 4, 5, 7, 16, 17, 1023, 4096 + 3, 70_001] {
        let shape = Shape::new(1, 1, 1, len);
        for k in 1..=5usize {
            for offset in [false, true] {
                let hosts: Vec<Vec<f32>> = (0..k).map(|_| rng.special(len)).collect();
                let ts: Vec<Tensor> = hosts
                    .iter()
                    .map(|h| Tensor::from_vec(shape, h.clone()).unwrap())
                    .collect();
                let refs: Vec<&Tensor> = ts.iter().collect();
                let mut want = Tensor::filled(shape, POISON);
                add::cpu::add_forward(&refs, &mut want).expect("cpu add");

                // Only input 0 at the offset when `offset`: mixed alignment
                // must fall back to the scalar kernels too.
                let bufs: Vec<DeviceBuffer<f32>> = hosts
                    .iter()
                    .enumerate()
                    .map(|(i, h)| upload_at(dev, h, offset && i == 0))
                    .collect();
                let views: Vec<_> = bufs
                    .iter()
                    .enumerate()
                    .map(|(i, b)| view(b, offset && i == 0))
                    .collect();
                let vrefs: Vec<_> = views.iter().collect();
                let mut yd = poisoned_at(dev, len, offset);
                add::cuda::add_forward(dev, &vrefs, &mut view_mut(&mut yd, offset))
                    .expect("launch");
                let got = download_at(dev, &yd, offset);
                let what = format!("add len {len} k {k} offset {offset}");
                assert_bitwise_nan(&what, &got, &want.data);

                // In place at every position.
                for (pos, host) in hosts.iter().enumerate() {
                    let others: Vec<_> = (0..k).filter(|&j| j != pos).map(|j| &views[j]).collect();
                    let mut acc = upload_at(dev, host, offset);
                    add::cuda::add_forward_inplace(
                        dev,
                        &mut view_mut(&mut acc, offset),
                        pos,
                        &others,
                    )
                    .expect("launch");
                    let got = download_at(dev, &acc, offset);
                    assert_bitwise_nan(&format!("{what} in place pos {pos}"), &got, &want.data);
                }
            }
        }
    }
    // Errors, not launches: no inputs, differing lengths, a bad position.
    let a = upload(dev, &[1.0; 5]);
    let b = upload(dev, &[1.0; 4]);
    let mut y = upload(dev, &[0.0; 5]);
    assert!(add::cuda::add_forward(dev, &[], &mut y.as_view_mut()).is_err());
    assert!(
        add::cuda::add_forward(dev, &[&a.as_view(), &b.as_view()], &mut y.as_view_mut()).is_err()
    );
    assert!(add::cuda::add_forward_inplace(dev, &mut y.as_view_mut(), 2, &[&a.as_view()]).is_err());
}
