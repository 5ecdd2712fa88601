//! Criterion benches: every CPU kernel at the NB201 shapes (batch 128), and
//! one whole NB201 cell end to end. `cargo bench --bench kernels`.
//! Throughput is reported as FLOP for convs, elements for the rest.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dasnas::ops::batchnorm::{cpu::batchnorm_forward, BatchNormSpec};
use dasnas::ops::conv2d::{cpu::conv2d_forward_relu_input, Conv2dSpec};
use dasnas::score::{codes::pack_signs, hamming, logdet::cholesky_logdet};
use dasnas::space::{Arch, Space};
use dasnas::{data::gaussian_batch, Shape, Tensor};

const B: usize = 128;

fn random(shape: Shape, seed: u64) -> Tensor {
    let key = dasnas::net::rng::stream_key(seed, 1);
    let data = (0..shape.len() as u64)
        .map(|i| dasnas::net::rng::uniform_pm1(key, i))
        .collect();
    Tensor { shape, data }
}

fn conv(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv2d_relu_input");
    g.sample_size(10);
    // (name, h, cin, cout, k, stride): the NB201 conv shapes.
    let shapes = [
        ("stem3x3_3-16_32", 32, 3, 16, 3, 1),
        ("3x3_16_32", 32, 16, 16, 3, 1),
        ("3x3_32_16", 16, 32, 32, 3, 1),
        ("3x3_64_8", 8, 64, 64, 3, 1),
        ("1x1_16_32", 32, 16, 16, 1, 1),
        ("1x1_64_8", 8, 64, 64, 1, 1),
        ("3x3s2_16-32", 32, 16, 32, 3, 2),
    ];
    for (name, h, cin, cout, k, stride) in shapes {
        let spec = Conv2dSpec {
            cin,
            cout,
            kh: k,
            kw: k,
            stride,
            pad: k / 2,
            dilation: 1,
            groups: 1,
        };
        let xs = Shape::new(B, h, h, cin);
        let ys = spec.out_shape(xs).unwrap();
        let x = random(xs, 1);
        let w = random(Shape::new(1, 1, 1, spec.weight_len()), 2).data;
        let mut y = Tensor::zeros(ys);
        g.throughput(Throughput::Elements(spec.flops(xs).unwrap()));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| conv2d_forward_relu_input(&spec, &x, &w, &mut y).unwrap())
        });
    }
    g.finish();
}

fn batchnorm(c: &mut Criterion) {
    let mut g = c.benchmark_group("batchnorm");
    g.sample_size(20);
    let x = random(Shape::new(B, 32, 32, 16), 3);
    let mut y = Tensor::zeros(x.shape);
    let spec = BatchNormSpec {
        channels: 16,
        eps: 1e-5,
    };
    let (gamma, beta) = (vec![1.0; 16], vec![0.0; 16]);
    g.throughput(Throughput::Elements(x.shape.len() as u64));
    g.bench_function("16ch_32x32", |b| {
        b.iter(|| batchnorm_forward(&spec, &x, &gamma, &beta, &mut y).unwrap())
    });
    g.finish();
}

fn codes(c: &mut Criterion) {
    let mut g = c.benchmark_group("codes");
    g.sample_size(20);
    let x = random(Shape::new(B, 32, 32, 16), 4);
    g.throughput(Throughput::Elements(x.shape.len() as u64));
    g.bench_function("pack_16ch_32x32", |b| {
        b.iter(|| pack_signs(&x.data, B).unwrap())
    });
    let packed = pack_signs(&x.data, B).unwrap();
    let pairs_words = (B * (B - 1) / 2 * packed.words_per_sample) as u64;
    g.throughput(Throughput::Elements(pairs_words));
    for k in hamming::PopcountKernel::available() {
        let mut h = vec![0u64; B * B];
        g.bench_function(format!("hamming_{}_256words", k.name()), |b| {
            b.iter(|| hamming::hamming_accumulate_with(k, &packed, 1, &mut h).unwrap())
        });
    }
    g.finish();
}

fn logdet(c: &mut Criterion) {
    let n = B;
    let mut a = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = if i == j {
                2.0 * n as f64
            } else {
                ((i * j) % 7) as f64
            };
        }
    }
    c.bench_function("cholesky_logdet_128", |b| b.iter(|| cholesky_logdet(&a, n)));
}

fn cell(c: &mut Criterion) {
    let mut g = c.benchmark_group("nb201_cell");
    g.sample_size(10);
    let batch = gaussian_batch(B, 32, 0);
    let arch = Arch::parse(
        Space::NB201,
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    )
    .unwrap();
    g.bench_function("score_3conv3x3_b128", |b| {
        b.iter(|| dasnas::score_arch(&arch, &batch, 0, 1.0).unwrap())
    });
    g.finish();
}

criterion_group!(benches, conv, batchnorm, codes, logdet, cell);
criterion_main!(benches);
