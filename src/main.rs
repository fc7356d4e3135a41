//! The `wf` binary: parse arguments, run, print an error as one sentence, exit with its code.

#![forbid(unsafe_code)]

fn main() {
    std::process::exit(wf::main_with_args(std::env::args_os().collect()));
}
