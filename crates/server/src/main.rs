fn main() -> std::process::ExitCode {
    steward::main()
}
