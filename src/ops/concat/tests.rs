//! Tests of channel concatenation: the CPU op against a naive
//! per-element reference, bad shapes, and the CUDA kernel (host
//! emulation, or a GPU) against the CPU bit for bit (both are copies).
//! Outputs start NaN-poisoned, so an element an op forgets to write fails.

use crate::ops::concat;
use crate::runtime::cuda::CudaDevice;
use crate::tensor::{Shape, Tensor};
use crate::testing::{Rng, POISON};

/// (n, h, w, channel list) cases at odd sizes.
fn concat_cases() -> Vec<(usize, usize, usize, Vec<usize>)> {
    vec![
        (1, 1, 1, vec![1, 1]),
        (2, 3, 5, vec![3, 1, 7]),
        (3, 7, 7, vec![17, 16, 5, 1]),
        (2, 33, 31, vec![13, 19]),
        (1, 4, 4, vec![5]),
    ]
}

fn naive_concat(xs: &[Tensor]) -> Vec<f32> {
    let s = xs[0].shape;
    let mut out = Vec::new();
    for n in 0..s.n {
        for i in 0..s.h {
            for j in 0..s.w {
                for x in xs {
                    for c in 0..x.shape.c {
                        out.push(x.at(n, i, j, c));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn concat_matches_naive() {
    let mut rng = Rng(11);
    for (n, h, w, cs) in concat_cases() {
        let xs: Vec<Tensor> = cs
            .iter()
            .map(|&c| rng.tensor(Shape::new(n, h, w, c)))
            .collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let shape = concat::out_shape(&xs.iter().map(|x| x.shape).collect::<Vec<_>>()).unwrap();
        assert_eq!(shape.c, cs.iter().sum::<usize>());
        let mut y = Tensor::filled(shape, POISON);
        concat::cpu::concat_forward(&refs, &mut y).unwrap();
        let want = naive_concat(&xs);
        assert!(
            y.data
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "concat {n}x{h}x{w} {cs:?}"
        );
    }
}

#[test]
fn concat_rejects_bad_shapes() {
    let a = Shape::new(2, 3, 3, 4);
    let e = concat::out_shape(&[a, Shape::new(2, 3, 4, 4)]).unwrap_err();
    assert!(e.to_string().contains("input 1"), "{e}");
    assert!(concat::out_shape(&[]).is_err());
    assert!(concat::out_shape(&[a, Shape::new(2, 3, 3, 0)]).is_err());
    let x = Tensor::zeros(a);
    let mut y = Tensor::zeros(Shape::new(2, 3, 3, 7));
    let e = concat::cpu::concat_forward(&[&x, &x], &mut y).unwrap_err();
    assert!(e.to_string().contains("output"), "{e}");
}

gpu_test!(concat_gpu_matches_cpu);
fn concat_gpu_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(13);
    for (n, h, w, cs) in concat_cases() {
        let xs: Vec<Tensor> = cs
            .iter()
            .map(|&c| rng.tensor(Shape::new(n, h, w, c)))
            .collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let shape = concat::out_shape(&xs.iter().map(|x| x.shape).collect::<Vec<_>>()).unwrap();
        let mut want = Tensor::filled(shape, POISON);
        concat::cpu::concat_forward(&refs, &mut want).unwrap();
        let xd: Vec<_> = xs.iter().map(|x| dev.upload(&x.data).unwrap()).collect();
        let views: Vec<_> = xd.iter().map(|b| b.as_view()).collect();
        let vrefs: Vec<_> = views.iter().collect();
        let mut yd = dev.upload(&vec![POISON; shape.len()]).unwrap();
        concat::cuda::concat_forward(dev, &vrefs, &cs, n * h * w, &mut yd.as_view_mut()).unwrap();
        let got = dev.download(&yd).unwrap();
        assert!(
            got.iter()
                .zip(&want.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "concat gpu {n}x{h}x{w} {cs:?}"
        );
        // A wrong length is refused before any launch.
        let bad =
            concat::cuda::concat_forward(dev, &vrefs, &cs, n * h * w + 1, &mut yd.as_view_mut());
        assert!(bad.is_err());
    }
}
