// Shell completion scripts (bash, zsh, fish), written from a description
// of a command line: its commands, each command's flags as its own
// flag.FlagSet prints them, and which flags take files or directories.
//
// Both commands (cmd/edge and cmd/edge-deploy) describe their command
// line in their own completion.go and print the script with Write.
package completion

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Shells are the shells `completion` writes scripts for.
var Shells = []string{"bash", "zsh", "fish"}

// Flag is one flag of a flag.FlagSet.
type Flag struct {
	Name  string // without the dash
	Type  string // the value's placeholder ("string", "int", "value"…); "" for a boolean flag
	Usage string // the usage's first line, without "(default …)"
}

// Command is a command, its flags and the fixed words its first
// argument may be.
type Command struct {
	Name, Help string
	Flags      []Flag
	Words      []string
}

// Spec describes a program's command line.
type Spec struct {
	Prog     string
	Global   []Flag // flags accepted before the command
	Commands []Command
	Files    map[string]bool // flags whose value is a file
	Dirs     map[string]bool // flags whose value is a directory
}

// flagDefaultRE matches a flag's first line in flag.PrintDefaults output:
// "  -name", "  -name type", or "  -x\tusage" for one-letter booleans.
var flagDefaultRE = regexp.MustCompile(`^  -([^\s=]+)(?: (\S+))?(?:\t(.*))?$`)

// ParseFlagDefaults reads the flags from what a flag set's usage printed
// (flag.PrintDefaults), so completion follows the real flag sets.
func ParseFlagDefaults(text string) []Flag {
	var flags []Flag
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		m := flagDefaultRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := Flag{Name: m[1], Type: m[2], Usage: m[3]}
		if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
			f.Usage = strings.TrimPrefix(lines[i+1], "    \t")
		}
		f.Usage = trimDefault(f.Usage)
		flags = append(flags, f)
	}
	return flags
}

// FlagSetFlags lists the flags of fs.
func FlagSetFlags(fs *flag.FlagSet) []Flag {
	var flags []Flag
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		flags = append(flags, Flag{Name: f.Name, Type: typ, Usage: trimDefault(usage)})
	})
	return flags
}

// trimDefault cuts a usage line at its first "(default …)": defaults
// vary by machine, and one taken from the environment (a token) must never
// end up in a script.
func trimDefault(usage string) string {
	if i := strings.Index(usage, " (default "); i >= 0 {
		usage = usage[:i]
	}
	return strings.TrimSpace(usage)
}

// Write writes the completion script of spec for shell.
func Write(w io.Writer, shell string, spec Spec) error {
	var b bytes.Buffer
	switch shell {
	case "bash":
		writeBash(&b, spec)
	case "zsh":
		writeZsh(&b, spec)
	case "fish":
		writeFish(&b, spec)
	default:
		return fmt.Errorf("unknown shell %q (want bash, zsh or fish)", shell)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// compIdent turns a program name into a shell identifier.
func compIdent(prog string) string { return strings.ReplaceAll(prog, "-", "_") }

func (s Spec) commandNames() []string {
	names := make([]string, len(s.Commands))
	for i, c := range s.Commands {
		names[i] = c.Name
	}
	return names
}

// valueKinds splits the flags that take a value into those taking a file,
// a directory, and anything else.
func (s Spec) valueKinds(flags []Flag) (files, dirs, other []string) {
	for _, f := range flags {
		switch {
		case f.Type == "":
		case s.Files[f.Name]:
			files = append(files, f.Name)
		case s.Dirs[f.Name]:
			dirs = append(dirs, f.Name)
		default:
			other = append(other, f.Name)
		}
	}
	return files, dirs, other
}

// dashAlternatives is a shell case pattern matching -name and --name for
// each name.
func dashAlternatives(names []string) string {
	var alts []string
	for _, n := range names {
		alts = append(alts, "-"+n, "--"+n)
	}
	return strings.Join(alts, "|")
}

func flagNames(flags []Flag) string {
	var names []string
	for _, f := range flags {
		names = append(names, "-"+f.Name)
	}
	return strings.Join(names, " ")
}

func writeBash(b *bytes.Buffer, s Spec) {
	fn := "_" + compIdent(s.Prog) + "_complete"
	fmt.Fprintf(b, `# bash completion for %[1]s, printed by "%[1]s completion bash".
# Load it now:   source <(%[1]s completion bash)
# or install it: %[1]s completion bash > /etc/bash_completion.d/%[1]s

%[2]s() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local cmd="" i words="" flags=""
    COMPREPLY=()
    # The command is the first word that is neither a flag nor a flag's value.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
`, s.Prog, fn)
	if files, dirs, other := s.valueKinds(s.Global); len(files)+len(dirs)+len(other) > 0 {
		fmt.Fprintf(b, "        %s) ((i++)) ;;\n", dashAlternatives(append(append(files, dirs...), other...)))
	}
	b.WriteString(`        -*) ;;
        *) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    case "$cmd" in
`)
	writeBashCase(b, s, `""`, s.Global, s.commandNames())
	for _, c := range s.Commands {
		writeBashCase(b, s, c.Name, c.Flags, c.Words)
	}
	fmt.Fprintf(b, `    esac
    if [[ $cur == --* ]]; then
        local f dashes=""
        for f in $flags; do dashes+=" -$f"; done
        flags=$dashes
    fi
    mapfile -t COMPREPLY < <(compgen -W "$words $flags" -- "$cur")
}
complete -F %s %s
`, fn, s.Prog)
}

func writeBashCase(b *bytes.Buffer, s Spec, label string, flags []Flag, words []string) {
	fmt.Fprintf(b, "    %s)\n", label)
	files, dirs, other := s.valueKinds(flags)
	if len(files)+len(dirs)+len(other) > 0 {
		b.WriteString("        case \"$prev\" in\n")
		if len(files) > 0 {
			fmt.Fprintf(b, "        %s) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- \"$cur\"); return ;;\n", dashAlternatives(files))
		}
		if len(dirs) > 0 {
			fmt.Fprintf(b, "        %s) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- \"$cur\"); return ;;\n", dashAlternatives(dirs))
		}
		if len(other) > 0 {
			fmt.Fprintf(b, "        %s) return ;;\n", dashAlternatives(other))
		}
		b.WriteString("        esac\n")
	}
	fmt.Fprintf(b, "        words='%s' flags='%s' ;;\n", strings.Join(words, " "), flagNames(flags))
}

// zshQuote quotes s for zsh (and any POSIX shell) in single quotes.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshOptSpec is an _arguments option spec for f.
func zshOptSpec(s Spec, f Flag) string {
	desc := strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`).Replace(f.Usage)
	spec := "-" + f.Name + "[" + desc + "]"
	if f.Type == "value" { // a flag.Value: repeatable, as -node is
		spec = "*" + spec
	}
	switch {
	case f.Type == "":
	case s.Files[f.Name]:
		spec += ":file:_files"
	case s.Dirs[f.Name]:
		spec += ":directory:_files -/"
	default:
		spec += ":" + f.Type + ": "
	}
	return zshQuote(spec)
}

func writeZsh(b *bytes.Buffer, s Spec) {
	fn := "_" + compIdent(s.Prog)
	fmt.Fprintf(b, `#compdef %[1]s
# zsh completion for %[1]s, printed by "%[1]s completion zsh".
# Load it now:   source <(%[1]s completion zsh)
# or install it: %[1]s completion zsh > "${fpath[1]}/_%[1]s"

%[2]s() {
  local curcontext="$curcontext" state line ret=1
  typeset -A opt_args
  local -a commands
  commands=(
`, s.Prog, fn)
	for _, c := range s.Commands {
		fmt.Fprintf(b, "    %s\n", zshQuote(c.Name+":"+strings.ReplaceAll(c.Help, ":", `\:`)))
	}
	b.WriteString("  )\n  _arguments -C \\\n")
	for _, f := range s.Global {
		fmt.Fprintf(b, "    %s \\\n", zshOptSpec(s, f))
	}
	fmt.Fprintf(b, `    '1: :->command' \
    '*:: :->args' && ret=0
  case $state in
  command)
    _describe -t commands %s commands && ret=0
    ;;
  args)
    curcontext="${curcontext%%:*:*}:%s-$words[1]:"
    case $words[1] in
`, zshQuote(s.Prog+" command"), s.Prog)
	for _, c := range s.Commands {
		if len(c.Flags) == 0 && len(c.Words) == 0 {
			continue
		}
		fmt.Fprintf(b, "    %s)\n      _arguments \\\n", c.Name)
		for _, f := range c.Flags {
			fmt.Fprintf(b, "        %s \\\n", zshOptSpec(s, f))
		}
		if len(c.Words) > 0 {
			fmt.Fprintf(b, "        %s \\\n", zshQuote("1:"+c.Name+":("+strings.Join(c.Words, " ")+")"))
		}
		b.WriteString("        && ret=0\n      ;;\n")
	}
	fmt.Fprintf(b, `    esac
    ;;
  esac
  return ret
}

if [ "$funcstack[1]" = %[1]s ]; then
  %[1]s "$@"
else
  compdef %[1]s %[2]s
fi
`, fn, s.Prog)
}

// fishQuote quotes s for fish in single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func writeFish(b *bytes.Buffer, s Spec) {
	fn := "__" + compIdent(s.Prog) + "_command"
	fmt.Fprintf(b, `# fish completion for %[1]s, printed by "%[1]s completion fish".
# Load it now:   %[1]s completion fish | source
# or install it: %[1]s completion fish > ~/.config/fish/completions/%[1]s.fish

# %[2]s prints the command: the first word that is neither a flag nor a
# flag's value.
function %[2]s
    set -l words (commandline -opc)
    set -e words[1]
    while set -q words[1]
        switch $words[1]
`, s.Prog, fn)
	if files, dirs, other := s.valueKinds(s.Global); len(files)+len(dirs)+len(other) > 0 {
		fmt.Fprintf(b, "            case %s\n                set -e words[1]\n",
			strings.ReplaceAll(dashAlternatives(append(append(files, dirs...), other...)), "|", " "))
	}
	fmt.Fprintf(b, `            case '-*'
            case '*'
                echo $words[1]
                return 0
        end
        set -e words[1]
    end
    return 1
end

complete -c %s -f
`, s.Prog)
	noCommand := fishQuote("not " + fn + " >/dev/null")
	for _, c := range s.Commands {
		fmt.Fprintf(b, "complete -c %s -n %s -a %s -d %s\n", s.Prog, noCommand, c.Name, fishQuote(c.Help))
	}
	writeFishFlags(b, s, noCommand, s.Global)
	for _, c := range s.Commands {
		cond := fishQuote("contains -- " + c.Name + " (" + fn + ")")
		writeFishFlags(b, s, cond, c.Flags)
		if len(c.Words) > 0 {
			fmt.Fprintf(b, "complete -c %s -n %s -a %s\n", s.Prog, cond, fishQuote(strings.Join(c.Words, " ")))
		}
	}
}

func writeFishFlags(b *bytes.Buffer, s Spec, cond string, flags []Flag) {
	for _, f := range flags {
		arg := ""
		switch {
		case f.Type == "":
		case s.Files[f.Name]:
			arg = " -r -F"
		case s.Dirs[f.Name]:
			arg = " -x -a '(__fish_complete_directories)'"
		default:
			arg = " -x"
		}
		fmt.Fprintf(b, "complete -c %s -n %s -o %s%s -d %s\n", s.Prog, cond, f.Name, arg, fishQuote(f.Usage))
	}
}

// WithFlags returns a copy of cmds in which the "completion" command
// completes shell names and every other command gets the flags that run
// prints for "NAME -h" (the command's own flag set, so completion cannot
// drift from the code). Every command must stop at -h before doing
// anything.
func WithFlags(cmds []Command, run func(args []string, stdout, stderr io.Writer) int) []Command {
	out := make([]Command, len(cmds))
	for i, c := range cmds {
		if c.Name == "completion" {
			c.Words = Shells
		} else {
			var usage bytes.Buffer
			run([]string{c.Name, "-h"}, io.Discard, &usage)
			c.Flags = ParseFlagDefaults(usage.String())
		}
		out[i] = c
	}
	return out
}
