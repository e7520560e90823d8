using JobLog.Testing;
using JobLog.Worker.Cli;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>The command line's help, errors and exit codes come from System.CommandLine; ledger text stays inert.</summary>
public class CliTests
{
    private static async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(args, CliConsole.Redirected(output, error));
        return (exit, output.ToString(), error.ToString());
    }

    [TestCase("--help")]
    [TestCase("-h")]
    [TestCase("help")]
    public async Task Help_ListsEveryCommand_AndExitsWith0(string help)
    {
        var (exit, output, _) = await RunAsync(help);

        Assert.That(exit, Is.Zero);
        Assert.That(output, Does.Contain("Usage:"));
        foreach (var command in new[] { "run", "demo", "sweep", "migrate", "replay", "tasks", "task", "hosts", "purge", "restore" })
        {
            Assert.That(output, Does.Contain("  " + command + " "), command);
        }
    }

    /// <summary>
    /// Session 30 users' finding: `tasks`/`failures` described their options in lower case without a full stop, the other
    /// commands in sentences, and `retry --by` said its default twice (its own "Default: the OS user." and
    /// System.CommandLine's "[default: root]"). Every option and argument is described in one style: a sentence.
    /// </summary>
    [Test]
    public void EveryOptionAndArgument_IsDescribedInASentence_AndSaysItsDefaultOnce()
    {
        using var output = new StringWriter();
        var root = Cli.Cli.Root(new CliContext(CliConsole.Redirected(output), [], []));
        var offenders = new List<string>();
        void Walk(System.CommandLine.Command command, string path)
        {
            foreach (var option in command.Options.Where(o => o is not System.CommandLine.Help.HelpOption and not System.CommandLine.VersionOption))
            {
                Check($"{path} {option.Name}", option.Description, option.HasDefaultValue);
            }

            foreach (var argument in command.Arguments)
            {
                Check($"{path} <{argument.Name}>", argument.Description, argument.HasDefaultValue);
            }

            foreach (var sub in command.Subcommands)
            {
                Walk(sub, path + " " + sub.Name);
            }
        }

        void Check(string what, string? description, bool shownDefault)
        {
            if (string.IsNullOrEmpty(description) || !char.IsUpper(description[0]) || !description.EndsWith('.'))
            {
                offenders.Add($"{what}: '{description}' is not a sentence");
            }
            else if (shownDefault && description.Contains("default", StringComparison.OrdinalIgnoreCase))
            {
                offenders.Add($"{what}: '{description}' says its default, and the help shows it too");
            }
        }

        Walk(root, "joblog");
        Assert.That(offenders, Is.Empty);
    }

    [TestCase("tasks", "--bogus")]
    [TestCase("purge", "--type", "tasks", "--older-than", "30d", "--nope")]
    [TestCase("bogus")]
    [TestCase("task", "a", "b")]
    [TestCase("tasks", "--limit")]
    public async Task UnknownOptionOrCommand_ExitsWith2_AsAnyOptionItCannotRead_WithAnError(params string[] args)
    {
        // 2 is the usage error (docs/dashboard.md); System.CommandLine's own parse errors exited 1, which is also
        // "no such task": a script could not tell a typo from a missing task.
        var (exit, _, error) = await RunAsync(args);

        Assert.That(exit, Is.EqualTo(2), error);
        Assert.That(error, Does.Contain(args[^1]));
    }

    [TestCase("tasks", "sqlite", "garbage;;==")]
    [TestCase("migrate", "sqlite", "Data Source=x.db;Bogus Keyword=1")]
    [TestCase("tasks", "postgres", "Hots=localhost;Pasword=secret-value")]
    public async Task AConnectionStringThatCannotBeRead_ExitsWith2_AtOnce_AndSaysWhich(string command, string database, string connectionString)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var (exit, _, error) = await RunAsync(command, "--JobLog:Database=" + database, "--ConnectionStrings:JobLog=" + connectionString);

        Assert.That(exit, Is.EqualTo(2), error);
        Assert.That(error, Does.Contain("ConnectionStrings:JobLog").And.Not.Contain("secret-value").And.Not.Contain("   at "));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), "no retries of a migration that cannot succeed");
    }

    [TestCase("--JobLog:Durability=Sometimes", "JobLog:Durability")]
    [TestCase("--JobLog:SearchIndex=maybe", "JobLog:SearchIndex")]
    [TestCase("--JobLog:Durabilty=Committed", "JobLog:Durabilty")]
    [TestCase("--JobLog:Sweeper:Interval=5s", "JobLog:Sweeper:Interval")]
    [TestCase("--JobLog:MaxBatchSize=0", "MaxBatchSize")]
    [TestCase("--RabbitMq:PrefetchCount=lots", "RabbitMq:PrefetchCount")]
    public async Task ASettingThatCannotBeRead_ExitsWith2_AndSaysWhich_NotTheDefaultInstead(string setting, string named)
    {
        // The Worker read three JobLog settings by hand and took the default for a value it could not parse
        // (Durability=Sometimes ran Journaled), and ignored every other option and every misspelt key.
        await using var ledger = TestLedger.Sqlite();
        var (exit, _, error) = await RunAsync("tasks", setting, "--ConnectionStrings:JobLog=" + ledger.ConnectionString);

        Assert.That(exit, Is.EqualTo(2), error);
        Assert.That(error, Does.Contain(named).And.Not.Contain("   at "));
    }

    [Test]
    public async Task EveryJobLogOption_IsASetting()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var setting = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;

        var (exit, _, error) = await RunAsync("sweep", "--JobLog:Host=cron-box-7", "--JobLog:Sweeper:BatchSize=50", setting);

        Assert.That(exit, Is.Zero, error);
        var hosts = await host.QueryAsync(db => db.CommandLogs.Where(c => c.Name == "sweep").Select(c => c.Host).ToListAsync());
        Assert.That(hosts, Is.EqualTo(new[] { "cron-box-7" }));
    }

    [Test]
    public async Task ALedgerThatCannotBeCreated_ExitsWith1_SayingWhy_NotAnUnhandledException()
    {
        // A readable connection string to a place no ledger can be (found by the hostile-input probe: exit 134, SIGABRT).
        var (exit, _, error) = await RunAsync("tasks", "--ConnectionStrings:JobLog=Data Source=/proc/joblog-nowhere/ledger.db");

        Assert.That(exit, Is.EqualTo(1), error);
        Assert.That(error, Does.Contain("/proc/joblog-nowhere"));
    }

    [TestCase("task", "123")]
    [TestCase("retry", "123")]
    [TestCase("resolve", "123")]
    public async Task AnIdThatIsNotOne_ExitsWith2_SayingWhichValueIsNot_AsEveryCommandThatTakesIds(string command, string value)
    {
        // task said "task needs one task id" when it had been given one, which was not a GUID.
        await using var ledger = TestLedger.Sqlite();
        var (exit, _, error) = await RunAsync(command, value, "--ConnectionStrings:JobLog=" + ledger.ConnectionString);

        Assert.That(exit, Is.EqualTo(2), error);
        Assert.That(error, Does.StartWith($"error: '{value}' is not a task id, e.g. "), error);
    }

    /// <summary>Arguments a script or a person could pass that no command can use: each is exit 2 with a line that says why.</summary>
    private static IEnumerable<TestCaseData> HostileArguments()
    {
        var id = Guid.NewGuid().ToString();
        // The names shown with control characters escaped (a NUL or an ESC in a test's name dropped it from the run).
        TestCaseData Case(params string[] args) => new TestCaseData([args]).SetArgDisplayNames(
            string.Join(" ", args.Select(a => string.Concat((a.Length > 40 ? a[..40] + "…" : a).Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString())))));

        yield return Case("tasks", "--limit", "-1");
        yield return Case("tasks", "--limit", "0");
        yield return Case("tasks", "--limit", "2147483648");
        yield return Case("tasks", "--limit", "1e3");
        yield return Case("tasks", "--limit", "1", "--limit", "2");
        yield return Case("tasks", "--since", "-5m");
        yield return Case("tasks", "--since", "1e400d");
        yield return Case("tasks", "--since", "36501d");
        yield return Case("tasks", "--since", new string('9', 1024 * 1024) + "d");
        yield return Case("tasks", "--from", new string('9', 1024 * 1024));
        yield return Case("tasks", "--cursor", "99999999999999999999-00000000000000000000000000000000");
        yield return Case("tasks", "--cursor", "-1-00000000000000000000000000000000");
        yield return Case("tasks", "--from", "0000-01-01");
        yield return Case("tasks", "--to", "10000-01-01");
        yield return Case("tasks", "--to", "9999-12-31T23:59:59-14:00");
        yield return Case("tasks", "--state", "1");
        yield return Case("tasks", "--state", "failed|succeeded");
        yield return Case("tasks", "--search", "a\0b");
        yield return Case("tasks", "--search", new string('x', 1024 * 1024));
        yield return Case("tasks", "--internal", "maybe");
        yield return Case("tasks", "--search-budget", "0s");
        yield return Case("tasks", "--search-budget", "5");
        yield return Case("tasks", "--search-budget", "2d");
        yield return Case("tasks", "--search-budget", "1e400s");
        yield return Case("hosts", "--state", "zombie");
        yield return Case("hosts", "--limit", "501");
        yield return Case("failures", "--by", "nothing");
        yield return Case("failures", "--group", "<script>alert(1)</script>");
        yield return Case("failures", "--group", "0123456789ABCDEF");
        yield return Case("task", "../../etc/passwd");
        yield return Case("task", new string('x', 1024 * 1024));
        yield return Case("retry", new string('x', 1024 * 1024));
        yield return Case("purge", "--type", new string('x', 1024 * 1024), "--older-than", "30d");
        yield return Case("purge", "--type", "tasks", "--older-than", new string('9', 1024 * 1024) + "d");
        yield return Case("task", "\u001b]0;owned\u0007");
        yield return Case("task", "00000000-0000-0000-0000-000000000000\0");
        yield return Case("retry", "--by", " ", id);
        yield return Case("resolve", "--by", "", id);
        yield return Case("resolve", "--note", new string('n', 2001), id);
        yield return Case("purge", "--type", "tasks", "--older-than", "-1d");
        yield return Case("purge", "--type", "tasks", "--older-than", "30d", "--batch-size", "0x10");
        yield return Case("purge", "--type", "../tasks", "--older-than", "30d");
        yield return Case("restore", "/nonexistent/joblog-backup.jsonl.gz");
        yield return Case("restore", "/dev/null", "--batch-size", "-5");
        yield return Case("restore", "/dev/null", "--batch-size", "lots");
        yield return Case("purge", "--type", "tasks", "--older-than", "30d", "--batch-size", "2147483647");
        yield return Case("restore", "/dev/null", "--batch-size", "100001");
    }

    /// <summary>
    /// Issue 15: <c>tasks --q</c> whose search runs out of its budget (<c>--search-budget</c>) prints the page it has (exit 0)
    /// and says so on stderr. 200 tasks of 5,000 <c>(</c>: checking one for the text compares up to 200 characters at each of
    /// its positions, seconds in all against 50 ms.
    /// </summary>
    [Test]
    public async Task Tasks_WhoseSearchRunsOutOfItsBudget_PrintsThePage_AndTheNoticeOnStderr()
    {
        // The host made the ledger and is its owner (its end deletes the file): the command runs while it is up.
        var ledger = TestLedger.Sqlite();
        await using var host = await LedgerHost.StartAsync(ledger);
        var now = DateTime.UtcNow;
        await host.QueryAsync(async db =>
        {
            db.AddRange(Enumerable.Range(0, 200).Select(i => new TaskLog
            {
                Id = Guid.NewGuid(), Name = "Hand", DispatchedAt = now.AddSeconds(-i), State = TaskState.Succeeded, Input = new string('(', 5000),
            }));
            return await db.SaveChangesAsync();
        });

        var (exit, output, error) = await RunAsync(
            "tasks", "--q", new string('(', 199) + ")", "--search-budget", "50ms", "--ConnectionStrings:JobLog=" + ledger.ConnectionString);

        Assert.That(exit, Is.EqualTo(0), error);
        Assert.That(output, Does.Contain("(no task matches)"));
        Assert.That(error, Does.Contain("The search stopped after 50 ms; it found no tasks in that time."));
    }

    [TestCaseSource(nameof(HostileArguments))]
    public async Task AnArgumentNoCommandCanUse_ExitsWith2_WithALineThatSaysWhy_NeverAStackTrace(string[] args)
    {
        await using var ledger = TestLedger.Sqlite();
        var (exit, output, error) = await RunAsync([.. args, "--ConnectionStrings:JobLog=" + ledger.ConnectionString]);

        Assert.That(exit, Is.EqualTo(2), () => $"{output}\n{error}");
        Assert.That(error.Trim(), Is.Not.Empty);
        if (args.Contains("--batch-size"))
        {
            Assert.That(error, Does.Contain("--batch-size"), "the option it cannot use, not what the file holds");
        }

        Assert.That(error, Does.Not.Contain("   at ").And.Not.Contain("Exception:").And.Not.Contain("(Parameter '"), error);
        Assert.That(error.Length, Is.LessThan(10_000), "the error says why in a line or a few, not the whole argument back");
        Assert.That((output + error).Where(c => char.IsControl(c) && c is not ('\n' or '\r')).Select(c => (int)c), Is.Empty, "control characters echoed inert");
    }

    [Test]
    public async Task Purge_WithoutType_IsAParseError()
    {
        var (exit, _, error) = await RunAsync("purge", "--older-than", "30d");

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("--type"));
    }

    [Test]
    public async Task Tasks_WithAFilterItCannotRead_ExitsWith2_AndSaysWhy()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());

        var setting = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;

        var state = await RunAsync("tasks", "--state", "bogus", setting);
        var search = await RunAsync("failures", "--q", new string('x', 201), setting);
        var since = await RunAsync("failures", "--since", "soon", setting);

        // The option's name as the user typed it on this command line (--search for the API's 'q'), not the API's parameter.
        Assert.That((state.Exit, search.Exit, since.Exit), Is.EqualTo((2, 2, 2)));
        Assert.That(state.Error, Does.StartWith("error: --state must be one of"));
        Assert.That(search.Error, Does.StartWith("error: --search must be at most 200 characters"));
        Assert.That(since.Error, Does.StartWith("error: --since must look like 15m"));
    }

    [Test]
    public async Task Hosts_ListsTheRunningInstanceWithItsHeartbeat()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var instance = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions
            .GetRequiredService<JobLog.Recording.LedgerRecorder>(host.Services).InstanceId;
        var setting = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;
        await LedgerHost.EventuallyAsync(async () => (await RunAsync("hosts", "--json", setting)).Output.Contains(instance.ToString(), StringComparison.Ordinal));

        var (exit, output, _) = await RunAsync("hosts", setting);
        var (jsonExit, json, _) = await RunAsync("hosts", "--json", setting);

        Assert.That((exit, jsonExit), Is.EqualTo((0, 0)));
        Assert.That(output, Does.Contain(instance.ToString()).And.Contain("ALIVE"));
        Assert.That(json, Does.Contain("\"state\": \"alive\"").Or.Contain("\"state\":\"alive\""));
    }

    [Test]
    public async Task OneShotCommands_AreNotListedAsHosts_TheirCommandsAreStillRecorded()
    {
        // A cron job that runs a command every minute would add 10,080 stopped hosts a week (HostRetention) to the hosts
        // page: the commands record no runs, so nothing needs their heartbeat.
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var instance = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions
            .GetRequiredService<JobLog.Recording.LedgerRecorder>(host.Services).InstanceId;
        var setting = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;
        await LedgerHost.EventuallyAsync(() => host.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == instance)));

        foreach (var args in new[] { new[] { "tasks" }, ["failures"], ["hosts"], ["sweep"] })
        {
            var (exit, _, error) = await RunAsync([.. args, setting]);
            Assert.That(exit, Is.Zero, error);
        }

        var hosts = await host.QueryAsync(db => db.Hosts.Select(h => h.InstanceId).ToListAsync());
        var commands = await host.QueryAsync(db => db.CommandLogs.Select(c => c.Name).ToListAsync());
        Assert.That(hosts, Is.EqualTo(new[] { instance }), "only the running process is a host");
        Assert.That(commands, Is.SupersetOf(new[] { "tasks", "failures", "hosts", "sweep" }));
    }

    // Session 34: hosts read and printed every instance of the week (HostRetention); a deployment that restarts often has thousands.
    [Test]
    public async Task Hosts_WithManyStoppedInstances_PrintsTheLiveOnesAndTheLatestGone_ThenPagesTheRest()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var now = DateTime.UtcNow;
        var stopped = Enumerable.Range(0, 600).Select(i => new HostLog
        {
            InstanceId = Guid.NewGuid(), Name = "pod-" + i, ProcessId = 1, StartedAt = now.AddHours(-2),
            LastHeartbeat = now.AddMinutes(-1 - i), StoppedAt = now.AddMinutes(-1 - i),
        }).ToList();
        await host.QueryAsync(db =>
        {
            db.AddRange(stopped);
            return db.SaveChangesAsync();
        });
        var setting = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;

        var (exit, output, error) = await RunAsync("hosts", setting);

        Assert.That(exit, Is.Zero, error);
        Assert.That(stopped.Take(20).Select(h => h.InstanceId.ToString()).Where(id => !output.Contains(id, StringComparison.Ordinal)), Is.Empty, "the latest 20 gone");
        Assert.That(stopped.Skip(20).Count(h => output.Contains(h.InstanceId.ToString(), StringComparison.Ordinal)), Is.Zero, "no older one");
        Assert.That(output, Does.Contain("and 580 more stopped or dead hosts: hosts --state stopped,dead").And.Contain(" 600 stopped"));

        var listed = new List<string>();
        string? cursor = null;
        do
        {
            var (pageExit, json, pageError) = await RunAsync(["hosts", "--state", "stopped,dead", "--limit", "250", "--json", .. cursor is null ? Array.Empty<string>() : ["--cursor", cursor], setting]);
            Assert.That(pageExit, Is.Zero, pageError);
            var page = System.Text.Json.JsonDocument.Parse(json).RootElement;
            listed.AddRange(page.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("instanceId").GetString()!));
            cursor = page.GetProperty("nextCursor").GetString();
        }
        while (cursor is not null);

        Assert.That(listed, Is.EqualTo(stopped.Select(h => h.InstanceId.ToString())), "every stopped instance once, latest first, 250 at a time");
    }

    [Test]
    public async Task Hosts_PrintsWhatAHostFoundStranded()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var stranded = new HostLog
        {
            InstanceId = Guid.NewGuid(), Name = "scheduler", ProcessId = 7, StartedAt = DateTime.UtcNow.AddMinutes(-5), LastHeartbeat = DateTime.UtcNow,
            Stranded = "1 scheduled message overdue by more than 00:00:10 for a broker none of this process's buses reaches (the earliest for rabbitmq://other/q, due 2026-12-06T10:00:00.0000000Z)",
        };
        await host.QueryAsync(db =>
        {
            db.Add(stranded);
            return db.SaveChangesAsync();
        });

        var (exit, output, error) = await RunAsync("hosts", "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString);

        Assert.That(exit, Is.Zero, error);
        Assert.That(output.Split('\n').Where(l => l.StartsWith("STRANDED", StringComparison.Ordinal)).Select(l => l.TrimEnd()),
            Is.EqualTo(new[] { $"STRANDED {stranded.InstanceId} (scheduler): {stranded.Stranded}" }), "one line, for the host that found something");
    }

    [Test]
    public void Settings_AreTakenOutBeforeParsing()
    {
        var (arguments, settings) = CliSettings.Split(["tasks", "--ConnectionStrings:JobLog=Data Source=x.db", "--state", "failed", "--JobLog:Database", "postgres"]);

        Assert.That(arguments, Is.EqualTo(new[] { "tasks", "--state", "failed" }));
        Assert.That(settings, Is.EqualTo(new[] { "--ConnectionStrings:JobLog=Data Source=x.db", "--JobLog:Database", "postgres" }));
    }

    [Test]
    public async Task Tasks_PrintsSpectreMarkupInLedgerTextLiterally()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "[red]not red[/] [link=file:///etc]x[/]", Input = "[bold]", DispatchedAt = DateTime.UtcNow, State = TaskState.Failed };
        await host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });

        foreach (var args in new[] { new[] { "tasks" }, ["task", task.Id.ToString()] })
        {
            var (exit, output, error) = await RunAsync([.. args, "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString]);

            Assert.That(exit, Is.Zero, error);
            Assert.That(output, Does.Contain("[red]not red[/] [link=file:///etc]x[/]").And.Contain("[bold]"), output);
        }
    }

    /// <summary>A recurring job's runs (session 32): <c>task ID</c> numbers each by its occurrence and its attempt within it.</summary>
    [Test]
    public async Task Task_OfARecurringJob_NumbersEachRunByOccurrenceAndAttempt()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var at = DateTime.UtcNow.AddMinutes(-5);
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "WeeklyReport", DispatchedAt = at, State = TaskState.Succeeded };
        foreach (var (retries, attempt, state) in new[] { (0, 0, TaskRunState.Succeeded), (1, 0, TaskRunState.Retried), (2, 1, TaskRunState.Succeeded) })
        {
            task.Runs.Add(new TaskRunLog
            {
                Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "WeeklyReportConsumer", Start = at.AddSeconds(retries), State = state,
                Retries = retries, JobRetryAttempt = attempt, Output = "report " + retries,
            });
        }

        await host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });

        var (exit, output, error) = await RunAsync("task", task.Id.ToString(), "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString);

        Assert.That(exit, Is.Zero, error);
        Assert.That(output, Does.Contain("--- run #0 (occurrence 1 · attempt 1) SUCCEEDED")
            .And.Contain("--- run #1 (occurrence 2 · attempt 1) RETRIED")
            .And.Contain("--- run #2 (occurrence 2 · attempt 2) SUCCEEDED"), output);
    }

    [Test]
    public async Task Sweep_Redirected_PrintsPlainProgressLinesAndTheResult()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());

        var (exit, output, error) = await RunAsync("sweep", "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString);

        Assert.That(exit, Is.Zero, error);
        Assert.That(output, Does.Contain("sweeping stale tasks…").And.Contain("expired 0, healed 0"));
        Assert.That(output.IndexOf('\u001b', StringComparison.Ordinal), Is.EqualTo(-1), "no ANSI sequences when redirected");
    }

    [Test]
    public async Task Migrate_FromTheCommandLine_IsRecorded()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());

        var (exit, output, error) = await RunAsync("migrate", "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString);

        Assert.That(exit, Is.Zero, error);
        Assert.That(output, Does.Contain("ledger schema is up to date"));
        var command = await host.QueryAsync(db => Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.SingleAsync(db.CommandLogs));
        Assert.That((command.Name, command.ExitCode, command.ExecutedFromCommandLine), Is.EqualTo(("migrate", (int?)0, true)));
    }
}
