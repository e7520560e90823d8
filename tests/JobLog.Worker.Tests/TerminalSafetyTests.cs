using JobLog.Testing;
using JobLog.Worker.Cli;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>Ledger text is attacker-controlled: the CLI prints its control characters as visible escapes, never raw.</summary>
public class TerminalSafetyTests
{
    // Retitles the window, clears the screen, rewrites the line, a C1 CSI (colour), DEL, a bidi override.
    private const string Hostile = "Evil\u001b]0;pwned\u0007\u001b[2J\rOK\u009b31m\u007f\u202eexe.txt";

    [Test]
    public async Task Tasks_And_Task_PrintLedgerControlCharactersAsVisibleEscapes()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = Hostile, QueueName = "q" + Hostile, Input = "Input=" + Hostile, DispatchedAt = DateTime.UtcNow,
            State = TaskState.Failed, Host = "h" + Hostile, ErrorMessage = "dispatch " + Hostile,
        };
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "C" + Hostile, Start = DateTime.UtcNow,
            State = TaskRunState.Failed, ErrorMessage = "boom\n" + Hostile, Output = "line 1\n" + Hostile + "\n\tline 3",
        });
        await host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });
        var settings = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;

        foreach (var (args, show) in new[] { (new[] { settings }, false), ([task.Id.ToString(), settings], true) })
        {
            using var output = new StringWriter();
            var exit = show ? await TasksCommand.ShowAsync(args, output) : await TasksCommand.ListAsync(args, output);
            var text = output.ToString();

            Assert.That(exit, Is.Zero, text);
            Assert.That(text.Where(c => c != '\n' && (char.IsControl(c) || c is >= '\u202a' and <= '\u202e' or >= '\u2066' and <= '\u2069')),
                Is.Empty, text);
            Assert.That(text, Does.Contain(show ? @"Evil\x1b]0;pwned\x07\x1b[2J\rOK\u009b31m\x7f\u202eexe.txt" : @"Evil\x1b]0;pwned\x07\x1b[2J"));
            if (show)
            {
                Assert.That(text, Does.Contain("line 1\n").And.Contain(@"\tline 3"), "line feeds stay line feeds");
            }
        }
    }

    [Test]
    public async Task TablesAndTaskPage_PrintLedgerTextAsIs_NotAsSpectreMarkupOrEmojiShortcodes()
    {
        // Spectre.Console's markup turns :name: into an emoji; Markup.Escape only escapes brackets. A message type, a queue
        // or an error holding ":white_check_mark: OK" was shown as a green tick in the CLI's tables.
        const string Text = ":white_check_mark::skull:[b]";
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var at = DateTime.UtcNow.AddMinutes(-1);
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "N " + Text, QueueName = "Q " + Text, Input = "I " + Text, DispatchedAt = at, Start = at, Stop = at,
            State = TaskState.Failed, Host = "H " + Text,
        };
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, QueueName = task.QueueName, ConsumerType = "C " + Text, Start = at, Stop = at,
            State = TaskRunState.Failed, ErrorMessage = "System.Exception: E " + Text + "\n   at Shop.Pay.Handle()",
        });
        await host.QueryAsync(db =>
        {
            db.Add(task);
            db.Add(new HostLog
            {
                InstanceId = Guid.NewGuid(), Name = "M " + Text, ProcessId = 1, Release = "R " + Text, StartedAt = at, LastHeartbeat = at,
            });
            return db.SaveChangesAsync();
        });
        var settings = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;

        foreach (var (args, shown) in new (string[] Args, string[] Shown)[]
        {
            (["tasks", settings], ["N ", "Q ", "I "]),
            (["task", task.Id.ToString(), settings], ["N ", "Q ", "I ", "H ", "C "]),
            (["failures", "--by", "queue", settings], ["Q ", "E "]),
            (["failures", "--by", "type", "--group", new JobLog.Failures.FailureGroupKey(JobLog.Failures.FailureGrouping.Type, task.Name).Id, settings], ["N ", "Q ", "E "]),
            (["hosts", settings], ["M ", "R "]),
        })
        {
            using var output = new StringWriter();
            var exit = await Cli.Cli.RunAsync(args, CliConsole.Redirected(output), recordCommand: false);
            var text = output.ToString();

            Assert.That(exit, Is.Zero, text);
            Assert.That(text, Does.Not.Contain("\u2705").And.Not.Contain("\U0001F480"), args[0] + ": " + text);
            foreach (var prefix in shown)
            {
                Assert.That(text, Does.Contain(prefix + Text), args[0] + ": " + text);
            }
        }
    }

    [Test]
    public async Task TaskPage_IndentsRunErrorsAndOutput_SoTheirLinesCannotPassForThePagesOwn()
    {
        // An exception's message is the sender's text: its lines were printed at the margin, like the page's own headings.
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var at = DateTime.UtcNow.AddMinutes(-1);
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "Pay", DispatchedAt = at, Start = at, Stop = at, State = TaskState.Failed };
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "C", Start = at, Stop = at, State = TaskRunState.Failed,
            ErrorMessage = "System.Exception: declined\n--- run #1 SUCCEEDED\noutput:\npaid, nothing to do\n\nChild tasks (0)",
            Output = "charging\n--- run #2 SUCCEEDED",
        });
        await host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });
        using var output = new StringWriter();

        var exit = await TasksCommand.ShowAsync([task.Id.ToString(), "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString], output);
        var lines = output.ToString().Split('\n');

        Assert.That(exit, Is.Zero, output.ToString());
        Assert.That(lines.Where(l => l.StartsWith("--- run", StringComparison.Ordinal)).ToList(), Is.EqualTo(new[] { "--- run #0 FAILED" }), output.ToString());
        Assert.That(lines.Where(l => l is "error:" or "output:").ToList(), Is.EqualTo(new[] { "error:", "output:" }), output.ToString());
        Assert.That(lines, Does.Not.Contain("Child tasks (0)"));
        Assert.That(lines, Does.Contain("  System.Exception: declined").And.Contain("  --- run #1 SUCCEEDED").And.Contain("  charging"));
    }

    [Test]
    public async Task ParseErrors_EchoTheArgumentsWithTheirControlCharactersAsVisibleEscapes()
    {
        // System.CommandLine echoes what it could not read; an argument can come from ledger text (a script passing a
        // task name or group on), and its ESC sequences reached the terminal through standard error.
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await Cli.Cli.RunAsync(["tasks", "--name", "a", "Evil\u001b]0;pwned\u0007\u001b[2J\u202e"], CliConsole.Redirected(output, error), recordCommand: false);

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error.ToString(), Does.Contain(@"Evil\x1b]0;pwned\x07\x1b[2J\u202e"));
        Assert.That((output.ToString() + error.ToString()).Where(c => c is not ('\n' or '\r') && (char.IsControl(c) || c == '\u202e')), Is.Empty);
    }

    [TestCase("", "")]
    [TestCase("plain text, ünïcödé and emoji 😀", "plain text, ünïcödé and emoji 😀")]
    [TestCase("\u0000\u0008\u001b\u001f\u007f\u0080\u009f", @"\x00\x08\x1b\x1f\x7f\u0080\u009f")]
    [TestCase("a\r\nb\tc", "a\\r\nb\\tc")]
    [TestCase("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", @"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")]
    [TestCase("#42\u200f- \u200e\u061c", @"#42\u200f- \u200e\u061c")]
    public void Escape_RendersEveryControlAsAVisibleEscape(string text, string expected)
    {
        Assert.That(TerminalWriter.Escape(text), Is.EqualTo(expected));

        using var output = new StringWriter();
        using var terminal = TerminalWriter.Wrap(output);
        terminal.Write(text);
        terminal.Write(text.ToCharArray());
        foreach (var c in text)
        {
            terminal.Write(c);
        }

        Assert.That(output.ToString(), Is.EqualTo(expected + expected + expected));
    }

    [TestCase("Charge\u200bCard \u2060\ufeff\u00ad\u3164 tag\U000E0041", @"Charge\u200bCard \u2060\ufeff\u00ad\u3164 tag\U000e0041")]
    [TestCase("zw\u200dj \U0001F468\u200d\U0001F469 \u0645\u06cc\u200c\u062e", "zw\\u200dj \U0001F468\u200d\U0001F469 \u0645\u06cc\u200c\u062e")]
    public void Escape_ShowsCharactersThatDrawNothing_WhereTheyHide_AndLeavesEmojiAndScriptJoinersAlone(string text, string expected)
    {
        // Whether a joiner hides depends on its neighbours, and a tag character is a surrogate pair: text written as
        // strings (what the CLI's tables and lines are) is judged whole; a lone char cannot be.
        Assert.That(TerminalWriter.Escape(text), Is.EqualTo(expected));

        using var output = new StringWriter();
        using var terminal = TerminalWriter.Wrap(output);
        terminal.Write(text);
        terminal.Write(text.ToCharArray());
        terminal.WriteLine(text);

        Assert.That(output.ToString(), Is.EqualTo(expected + expected + expected + output.NewLine));
    }

    [TestCase("99999999999999999999d")]
    [TestCase("1e400s")]
    [TestCase("36501d")]
    [TestCase("-5d")]
    [TestCase("NaNd")]
    [TestCase("Infinityh")]
    public async Task Purge_WithAnAgeOutOfRange_IsAUsageError(string age)
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        using var output = new StringWriter();

        var exit = await PurgeCommand.PurgeAsync(
            ["--type", "tasks", "--older-than", age, "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString], output);

        Assert.That(exit, Is.EqualTo(2));
    }
}
