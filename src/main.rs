use std::process::ExitCode;

fn main() -> ExitCode {
    authauth::cli::main()
}
