//! Channel concatenation and spatial crop: the CPU ops against naive
//! per-element references, and the CUDA kernels against the CPU ops (bit
//! for bit: both are copies). Outputs start NaN-poisoned, so an element an
//! op forgets to write fails. The GPU tests run on the host emulation of
//! the CUDA backend and, when asked for, on a GPU (see `common`).

#[macro_use]
mod common;
use common::Rng;
use dasnas::ops::concat;
use dasnas::ops::crop::{self, CropSpec};
use dasnas::runtime::cuda::CudaDevice;
use dasnas::tensor::{Shape, Tensor};

const POISON: f32 = f32::from_bits(0x7fc0_dead);

fn random(rng: &mut Rng, s: Shape) -> Tensor {
    let data = (0..s.len())
        .map(|_| ((rng.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        .collect();
    Tensor::from_vec(s, data).unwrap()
}

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
            .map(|&c| random(&mut rng, Shape::new(n, h, w, c)))
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

fn cs(top: usize, left: usize, c0: usize, h: usize, w: usize, c: usize) -> CropSpec {
    CropSpec {
        top,
        left,
        h,
        w,
        c0,
        c,
    }
}

fn crop_cases() -> Vec<(Shape, CropSpec)> {
    vec![
        (Shape::new(2, 5, 7, 3), cs(1, 1, 0, 4, 6, 3)),
        (Shape::new(1, 32, 32, 17), cs(1, 1, 0, 31, 31, 17)),
        (Shape::new(3, 9, 6, 5), cs(2, 0, 0, 3, 5, 5)),
        (Shape::new(1, 1, 1, 1), cs(0, 0, 0, 1, 1, 1)),
        (Shape::new(2, 7, 5, 43), cs(0, 0, 0, 7, 5, 42)),
        (Shape::new(1, 6, 9, 17), cs(1, 2, 3, 4, 5, 11)),
    ]
}

#[test]
fn crop_matches_naive() {
    let mut rng = Rng(12);
    for (s, spec) in crop_cases() {
        let x = random(&mut rng, s);
        let out = spec.out_shape(s).unwrap();
        let mut y = Tensor::filled(out, POISON);
        crop::cpu::crop_forward(&spec, &x, &mut y).unwrap();
        for n in 0..out.n {
            for i in 0..out.h {
                for j in 0..out.w {
                    for c in 0..out.c {
                        assert_eq!(
                            y.at(n, i, j, c).to_bits(),
                            x.at(n, spec.top + i, spec.left + j, spec.c0 + c).to_bits(),
                            "{s} {spec:?} at {n},{i},{j},{c}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn crop_rejects_windows_outside_the_input() {
    let s = Shape::new(1, 4, 4, 2);
    for spec in [
        cs(1, 0, 0, 4, 4, 2),
        cs(0, 0, 0, 0, 4, 2),
        cs(usize::MAX, 0, 0, 2, 4, 2),
        cs(0, 0, 1, 4, 4, 2),
        cs(0, 0, 0, 4, 4, 0),
    ] {
        let e = spec.out_shape(s).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }
    assert!(CropSpec::to_end(s, 4, 0).is_err());
    assert_eq!(CropSpec::to_end(s, 1, 1).unwrap(), cs(1, 1, 0, 3, 3, 2));
    assert_eq!(
        CropSpec::first_channels(s, 1).unwrap(),
        cs(0, 0, 0, 4, 4, 1)
    );
    assert!(CropSpec::first_channels(s, 3).is_err());
}

gpu_test!(concat_gpu_matches_cpu);
fn concat_gpu_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(13);
    for (n, h, w, cs) in concat_cases() {
        let xs: Vec<Tensor> = cs
            .iter()
            .map(|&c| random(&mut rng, Shape::new(n, h, w, c)))
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

gpu_test!(crop_gpu_matches_cpu);
fn crop_gpu_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(14);
    for (s, spec) in crop_cases() {
        let x = random(&mut rng, s);
        let out = spec.out_shape(s).unwrap();
        let mut want = Tensor::filled(out, POISON);
        crop::cpu::crop_forward(&spec, &x, &mut want).unwrap();
        let xd = dev.upload(&x.data).unwrap();
        let mut yd = dev.upload(&vec![POISON; out.len()]).unwrap();
        crop::cuda::crop_forward(dev, &spec, s, &xd.as_view(), &mut yd.as_view_mut()).unwrap();
        let got = dev.download(&yd).unwrap();
        assert!(
            got.iter()
                .zip(&want.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "crop gpu {s} {spec:?}"
        );
    }
}
