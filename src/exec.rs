//! `-exec CMD` (CLI_CONFIG.md §7): the command is split into words with
//! shell-like quoting. Litestream silently drops everything from the first
//! unquoted `;`, `&`, `|`, `<` or `>` on; freshet instead runs such a
//! command through `/bin/sh -c`, so what the user wrote is what runs.

/// How to start the child.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Program {
    /// A program and its arguments, run directly.
    Direct(Vec<String>),
    /// A command line for `/bin/sh -c`.
    Shell(String),
}

/// Parses `cmd`. Errors on an unterminated quote or an empty command.
pub(crate) fn parse(cmd: &str) -> Result<Program, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => {
                            return Err(format!(
                                "unterminated single quote in exec command: {cmd}"
                            ));
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => {
                                return Err(format!(
                                    "unterminated double quote in exec command: {cmd}"
                                ));
                            }
                        },
                        Some(c) => word.push(c),
                        None => {
                            return Err(format!(
                                "unterminated double quote in exec command: {cmd}"
                            ));
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            ';' | '&' | '|' | '<' | '>' => return Ok(Program::Shell(cmd.to_owned())),
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("the exec command is empty".into());
    }
    Ok(Program::Direct(words))
}

/// A `tokio` command for `program`.
pub(crate) fn command(program: &Program) -> tokio::process::Command {
    match program {
        Program::Direct(words) => {
            let mut c = tokio::process::Command::new(&words[0]);
            c.args(&words[1..]);
            c
        }
        Program::Shell(line) => {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(words: &[&str]) -> Program {
        Program::Direct(words.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            parse("app serve --port 8080").unwrap(),
            direct(&["app", "serve", "--port", "8080"])
        );
        assert_eq!(
            parse(r#"app 'a b' "c \"d\"" e\ f"#).unwrap(),
            direct(&["app", "a b", "c \"d\"", "e f"])
        );
        assert_eq!(parse("app ''").unwrap(), direct(&["app", ""]));
        assert_eq!(parse("app 'x;y'").unwrap(), direct(&["app", "x;y"]));
    }

    #[test]
    fn shell_operators_run_through_sh_instead_of_being_dropped() {
        assert_eq!(
            parse("migrate && app").unwrap(),
            Program::Shell("migrate && app".into())
        );
        assert_eq!(
            parse("app > log").unwrap(),
            Program::Shell("app > log".into())
        );
    }

    #[test]
    fn bad_commands_are_errors() {
        assert!(parse("app 'oops").is_err());
        assert!(parse("app \"oops").is_err());
        assert!(parse("   ").is_err());
    }
}
