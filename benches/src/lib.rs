//! VeloStream benchmarks. The criterion benches are in `benches/benches/`,
//! the end-to-end comparison scripts and recorded results beside them in
//! `benches/` (see `benches/README.md` and `benches/RESULTS.md`).
