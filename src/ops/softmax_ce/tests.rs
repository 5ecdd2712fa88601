//! Tests of softmax cross-entropy: the CPU loss, gradient (against finite
//! differences) and accuracy (ties to the lowest index), bad labels; and the
//! CUDA kernel (host emulation, or a GPU) against an f64 reference.

use crate::ops::softmax_ce::cpu as ce;
use crate::ops::softmax_ce::cuda::{softmax_ce, SoftmaxCeOut};
use crate::ops::tests::{check, check_grad, f64s};
use crate::runtime::cuda::CudaDevice;
use crate::testing::{download, upload, Rng, POISON};
use crate::{Shape, Tensor};

#[test]
fn softmax_ce_gradient_loss_and_accuracy() {
    let mut rng = Rng(16);
    let (n, k) = (5, 7);
    let s = Shape::new(n, 1, 1, k);
    let z = Tensor::from_vec(s, rng.vec(n * k).iter().map(|v| 3.0 * v).collect()).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3) % k as u32).collect();
    let ce_ref = |zv: &[f64]| -> f64 {
        (0..n)
            .map(|b| {
                let row = &zv[b * k..(b + 1) * k];
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                lse - row[labels[b] as usize]
            })
            .sum::<f64>()
            / n as f64
    };
    let mut g = Tensor::filled(s, f32::NAN);
    let st = ce::softmax_ce_forward_backward(&z, &labels, &mut g).unwrap();
    let z64 = f64s(&z.data);
    assert!(
        (st.loss - ce_ref(&z64)).abs() < 1e-6,
        "{} vs {}",
        st.loss,
        ce_ref(&z64)
    );
    check_grad("softmax_ce dlogits", &z.data, &g.data, 1e-5, ce_ref);
    assert_eq!(ce::softmax_ce_loss(&z, &labels).unwrap(), st);
    // Accuracy: argmax with ties to the lowest index.
    let z = Tensor::from_vec(
        Shape::new(3, 1, 1, 3),
        vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0, 5.0, 0.0, 1.0],
    )
    .unwrap();
    let st = ce::softmax_ce_loss(&z, &[1, 1, 0]).unwrap();
    assert_eq!((st.correct, st.batch), (2, 3));
    assert!((st.accuracy() - 2.0 / 3.0).abs() < 1e-12);
    // Bad labels are errors that name them.
    let e = ce::softmax_ce_loss(&z, &[1, 3, 0]).unwrap_err().to_string();
    assert!(e.contains("label 3"), "{e}");
    assert!(ce::softmax_ce_loss(&z, &[1, 1]).is_err());
}

gpu_test!(softmax_ce_matches_reference);
fn softmax_ce_matches_reference(dev: &CudaDevice) {
    let mut rng = Rng(46);
    for (batch, classes) in [(1usize, 1usize), (5, 10), (128, 10), (300, 7), (3, 1000)] {
        // Multiples of 1.5 in [-6, 6]: ties for the argmax rule.
        let logits: Vec<f32> = (0..batch * classes)
            .map(|_| (rng.unit() * 4.0).trunc() * 1.5)
            .collect();
        let labels: Vec<i32> = (0..batch)
            .map(|_| (rng.next() % classes as u64) as i32)
            .collect();
        let (ld, lbd) = (upload(dev, &logits), upload(dev, &labels));
        let mut loss = upload(dev, &vec![POISON; batch]);
        let mut correct = upload(dev, &vec![-1i32; batch]);
        let mut dl = upload(dev, &vec![POISON; batch * classes]);
        let mut mean = upload(dev, &[POISON]);
        softmax_ce(
            dev,
            batch,
            classes,
            &ld.slice(..),
            &lbd.slice(..),
            SoftmaxCeOut {
                loss: loss.slice_mut(..),
                correct: correct.slice_mut(..),
                dlogits: dl.slice_mut(..),
                mean_loss: mean.slice_mut(..),
            },
        )
        .unwrap();
        let (mut rloss, mut rdl) = (vec![0f64; batch], vec![0f64; batch * classes]);
        let mut rcorrect = vec![0i32; batch];
        for b in 0..batch {
            let row = &logits[b * classes..(b + 1) * classes];
            let (mut mx, mut arg) = (row[0], 0);
            for (k, &v) in row.iter().enumerate() {
                if v > mx {
                    mx = v;
                    arg = k;
                }
            }
            let s: f64 = row
                .iter()
                .map(|&v| (f64::from(v) - f64::from(mx)).exp())
                .sum();
            let label = labels[b] as usize;
            rloss[b] = f64::from(mx) + s.ln() - f64::from(row[label]);
            rcorrect[b] = i32::from(arg == label);
            for (k, &v) in row.iter().enumerate() {
                let p = (f64::from(v) - f64::from(mx)).exp() / s;
                rdl[b * classes + k] = (p - if k == label { 1.0 } else { 0.0 }) / batch as f64;
            }
        }
        let rmean = rloss.iter().sum::<f64>() / batch as f64;
        let tiny = vec![1e-3f64; batch * classes];
        check("ce loss", &download(dev, &loss), &rloss, &tiny, 1e-6);
        check(
            "ce dlogits",
            &download(dev, &dl),
            &rdl,
            &vec![1e-9; batch * classes],
            1e-6,
        );
        check("ce mean", &download(dev, &mean), &[rmean], &[1e-3], 1e-6);
        assert_eq!(
            download(dev, &correct),
            rcorrect,
            "correct flags {batch}x{classes}"
        );
    }
}
