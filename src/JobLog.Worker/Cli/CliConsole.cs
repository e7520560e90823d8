using JobLog.Maintenance;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace JobLog.Worker.Cli;

/// <summary>
/// Where a command writes: standard output and error (read when written, so that a command's console capture sees
/// them), and whether output is redirected. A terminal gets Spectre.Console's colours and live progress bars; a file,
/// a pipe or a test's <see cref="StringWriter"/> gets plain text, wide tables and progress as plain lines.
/// </summary>
internal sealed class CliConsole(Func<TextWriter> output, Func<TextWriter> error, bool redirected)
{
    /// <summary>Columns of a table when output is redirected: wide enough that rows are not wrapped.</summary>
    private const int RedirectedWidth = 400;

    public TextWriter Out => output();

    public TextWriter Error => error();

    public bool IsRedirected => redirected;

    /// <summary>The process's console.</summary>
    public static CliConsole Standard() => new(() => Console.Out, () => Console.Error, Console.IsOutputRedirected);

    /// <summary>Plain text to <paramref name="output"/>; errors to <paramref name="error"/> (standard error when null).</summary>
    public static CliConsole Redirected(TextWriter output, TextWriter? error = null) =>
        new(() => output, () => error ?? Console.Error, redirected: true);

    /// <summary>Ledger text written as is: control characters as visible escapes (<see cref="TerminalWriter"/>).</summary>
    public TextWriter SafeOut => TerminalWriter.Wrap(Out);

    /// <summary>A Spectre.Console console on <see cref="Out"/>, made when needed (after a console capture began).</summary>
    public IAnsiConsole Spectre()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Out),
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
        });
        if (redirected)
        {
            console.Profile.Width = RedirectedWidth;
        }

        return console;
    }

    /// <summary>An error line (control characters escaped), as <c>error: ...</c>.</summary>
    public Task ErrorAsync(string message) => Error.WriteLineAsync("error: " + TerminalWriter.Escape(message));

    /// <summary>
    /// Runs long work with a progress bar per step on a terminal; redirected, each step's start is a plain line
    /// (<paramref name="startLine"/>). Reports arrive on the worker's thread, in order.
    /// </summary>
    public async Task<T> WithProgressAsync<T>(Func<MaintenanceProgress, string?> startLine, Func<IProgress<MaintenanceProgress>, Task<T>> work)
    {
        if (redirected)
        {
            var lines = Out;
            return await work(new Reporter(p =>
            {
                if (!p.IsFinished && startLine(p) is { } line)
                {
                    lines.WriteLine(TerminalWriter.Escape(line));
                }
            }));
        }

        var console = Spectre();
        return await console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var bars = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
                return await work(new Reporter(p =>
                {
                    if (!bars.TryGetValue(p.Step, out var bar))
                    {
                        bar = bars[p.Step] = context.AddTask(LedgerMarkup.Escape(p.Step));
                    }

                    bar.IsIndeterminate = p.Total is null;
                    if (p.Total is { } total)
                    {
                        bar.MaxValue = Math.Max(total, 1);
                        bar.Value = p.Done;
                    }

                    if (p.IsFinished)
                    {
                        bar.IsIndeterminate = false;
                        bar.Value = bar.MaxValue;
                        bar.StopTask();
                    }
                }));
            });
    }

    /// <summary>Writes a renderable (a table, a grid).</summary>
    public void Write(IRenderable renderable) => Spectre().Write(renderable);

    /// <summary>Progress reported synchronously (<see cref="Progress{T}"/> would post to the thread pool, out of order).</summary>
    private sealed class Reporter(Action<MaintenanceProgress> report) : IProgress<MaintenanceProgress>
    {
        public void Report(MaintenanceProgress value) => report(value);
    }
}

/// <summary>
/// Ledger text in Spectre.Console renderables: control characters escaped, and never read as markup. Ledger text goes
/// into <see cref="Text"/>, not <see cref="Markup"/>: markup reads <c>:name:</c> as an emoji, which
/// <see cref="Markup.Escape"/> (brackets only) leaves as it is.
/// </summary>
internal static class LedgerMarkup
{
    /// <summary><paramref name="text"/> safe for a terminal and for markup ("-" when empty); for JobLog's own strings in markup.</summary>
    public static string Escape(string? text) =>
        string.IsNullOrEmpty(text) ? "-" : Markup.Escape(TerminalWriter.Escape(text));

    /// <summary>Ledger text as it is, control characters escaped, line feeds kept ("-" when empty).</summary>
    public static Text Block(string? text) => new(string.IsNullOrEmpty(text) ? "-" : TerminalWriter.Escape(text));

    /// <summary>One line of ledger text, at most <paramref name="length"/> characters, as it is.</summary>
    public static Text Cell(string? text, int length)
    {
        if (string.IsNullOrEmpty(text))
        {
            return new Text("-");
        }

        var line = TerminalWriter.Escape(text.ReplaceLineEndings(" "));
        return new Text(line.Length <= length ? line : line[..(length - 1)] + "…");
    }

    /// <summary>A state in its colour: failures red, successes green, the rest plain.</summary>
    public static Markup State(string state) => new(state switch
    {
        "FAILED" or "EXPIRED" or "ERROR" or "CRITICAL" => "[red]" + state + "[/]",
        "SUCCEEDED" => "[green]" + state + "[/]",
        "ACTIVE" or "RETRIED" or "WARNING" => "[yellow]" + state + "[/]",
        _ => Markup.Escape(state),
    });
}
