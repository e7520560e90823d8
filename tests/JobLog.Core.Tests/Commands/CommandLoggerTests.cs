using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.Core.Tests.Commands;

[NonParallelizable]
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class CommandLoggerTests(LedgerProvider provider)
{
    private LedgerHost _host = null!;
    private TextWriter _realOut = null!;
    private TextWriter _realError = null!;
    private StringWriter _console = null!;

    [SetUp]
    public async Task StartAsync()
    {
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Commands.ExcludedNames.Add("Shell"));
        _realOut = Console.Out;
        _realError = Console.Error;
        // Stands in for the terminal: what the command echoes lands here.
        _console = new StringWriter();
        Console.SetOut(_console);
        Console.SetError(_console);
    }

    [TearDown]
    public async Task StopAsync()
    {
        Console.SetOut(_realOut);
        Console.SetError(_realError);
        await _host.DisposeAsync();
    }

    private CommandLogger Commands => _host.Services.GetRequiredService<CommandLogger>();

    [Test]
    public async Task Command_Printing20000LinesAndFailing_KeepsTheEndOfItsOutputItsExitCodeAndItsError()
    {
        var exitCode = await Commands.RunAsync("import", ["--file", "customers.csv"], async ct =>
        {
            for (var i = 0; i < 20_000; i++)
            {
                Console.WriteLine($"imported row {i}");
            }

            await Console.Error.WriteLineAsync("error: disk full after row 19999");
            return 3;
        });

        Assert.That(exitCode, Is.EqualTo(3));
        var echoed = _console.ToString();
        Assert.That(echoed, Does.Contain("imported row 0\n").And.Contain("imported row 19999\n").And.Contain("disk full"), "everything still reached the console");
        var log = await SingleCommandAsync();
        Assert.That(log.IsSuccessful, Is.False);
        Assert.That(log.ExitCode, Is.EqualTo(3));
        Assert.That(log.Output!.Length, Is.LessThanOrEqualTo(10_000));
        Assert.That(log.Output, Does.StartWith("…\n").And.Contain("imported row 19999\n").And.EndWith("error: disk full after row 19999\n"));
        Assert.That(log.Output, Does.Not.Contain("imported row 0\n"));
        Assert.That(log.ErrorMessage, Is.EqualTo("Exit code 3.\nerror: disk full after row 19999"));
        Assert.That(log.Name, Is.EqualTo("import"));
        Assert.That(log.Input, Is.EqualTo("--file customers.csv"));
        Assert.That(log.Stop, Is.Not.Null);
        Assert.That(log.ExecutedFromCommandLine, Is.False);
    }

    [Test]
    public async Task Command_Throwing_RecordsTheExceptionAndRethrowsTheSameOne()
    {
        var failure = new InvalidOperationException("ledger is read-only");

        var caught = Assert.ThrowsAsync<InvalidOperationException>(() => Commands.RunAsync("purge", [], async ct =>
        {
            Console.WriteLine("purging…");
            await Task.Yield();
            throw failure;
        }));

        Assert.That(caught, Is.SameAs(failure));
        var log = await SingleCommandAsync();
        Assert.That(log.IsSuccessful, Is.False);
        Assert.That(log.ExitCode, Is.Null);
        Assert.That(log.ErrorMessage, Does.StartWith("System.InvalidOperationException: ledger is read-only").And.Contain(" at "));
        Assert.That(log.Output, Is.EqualTo("purging…\n"));
    }

    [Test]
    public async Task Command_Succeeding_CapturesConsoleAndILoggerAndMasksItsArguments()
    {
        var logger = _host.Services.GetRequiredService<ILogger<CommandLoggerTests>>();

        var exitCode = await Commands.RunAsync(
            "migrate",
            ["--password=hunter2", "--token", "abc123", "--ConnectionStrings:Db=Host=db;Password=pw-9;Database=app", "plain value"],
            ct =>
            {
                Console.WriteLine("schema is up to date");
                logger.LogInformation("Applied {Count} migrations", 2);
                return Task.FromResult(0);
            },
            executedFromCommandLine: true);

        Assert.That(exitCode, Is.Zero);
        var log = await SingleCommandAsync();
        Assert.That(log.IsSuccessful, Is.True);
        Assert.That(log.ExitCode, Is.Zero);
        Assert.That(log.ErrorMessage, Is.Null);
        Assert.That(log.ExecutedFromCommandLine, Is.True);
        Assert.That(log.Output, Does.Contain("schema is up to date\n").And.Contain("Applied 2 migrations"));
        Assert.That(log.Input, Is.EqualTo("--password=[Filtered] --token [Filtered] --ConnectionStrings:Db=Host=db;Password=[Filtered];Database=app \"plain value\""));
    }

    [Test]
    public async Task Command_WhileRunning_IsRecordedUnfinished()
    {
        CommandLog? during = null;

        await Commands.RunAsync("report", [], async ct =>
        {
            await _host.FlushAsync();
            during = await _host.QueryAsync(db => db.CommandLogs.AsNoTracking().SingleAsync());
            return 0;
        });

        Assert.That(during!.IsSuccessful, Is.Null);
        Assert.That(during.Stop, Is.Null);
        Assert.That((await SingleCommandAsync()).IsSuccessful, Is.True);
    }

    [Test]
    public async Task ExcludedCommand_RunsWithoutARecord()
    {
        var ran = false;

        var exitCode = await Commands.RunAsync("shell", [], ct =>
        {
            ran = true;
            Console.WriteLine("interactive");
            return Task.FromResult(0);
        });

        await _host.FlushAsync();
        Assert.That(exitCode, Is.Zero);
        Assert.That(ran, Is.True);
        Assert.That(Commands.IsExcluded("SHELL"), Is.True);
        Assert.That(await _host.QueryAsync(db => db.CommandLogs.CountAsync()), Is.Zero);
        Assert.That(_console.ToString(), Is.EqualTo("interactive" + Environment.NewLine));
    }

    [Test]
    public async Task ConcurrentCommands_EachCaptureOnlyTheirOwnOutput()
    {
        async Task<int> Body(string marker, CancellationToken ct)
        {
            for (var i = 0; i < 50; i++)
            {
                Console.WriteLine($"{marker} {i}");
                await Task.Yield();
            }

            return 0;
        }

        var a = Task.Run(() => Commands.RunAsync("alpha", [], ct => Body("alpha", ct)));
        var b = Task.Run(() => Commands.RunAsync("beta", [], ct => Body("beta", ct)));
        Console.WriteLine("outside any command");
        await Task.WhenAll(a, b);

        var logs = await CommandsAsync(2);
        var alpha = logs.Single(l => l.Name == "alpha").Output!;
        var beta = logs.Single(l => l.Name == "beta").Output!;
        Assert.That(alpha, Does.Contain("alpha 49").And.Not.Contain("beta").And.Not.Contain("outside"));
        Assert.That(beta, Does.Contain("beta 49").And.Not.Contain("alpha").And.Not.Contain("outside"));
        Assert.That(_console.ToString(), Does.Contain("outside any command").And.Contain("alpha 49").And.Contain("beta 49"));
    }

    [Test]
    public async Task Command_CapturesItsThreadPoolWorkButNotBackgroundThreadsItStarted()
    {
        await Commands.RunAsync("mixed", [], async ct =>
        {
            await Task.Run(() => Console.WriteLine("from the thread pool"), ct);
            var worker = new Thread(() => Console.WriteLine("from a background queue thread")) { IsBackground = true };
            worker.Start();
            worker.Join();
            return 0;
        });

        var log = await SingleCommandAsync();
        Assert.That(log.Output, Is.EqualTo("from the thread pool\n"));
        Assert.That(_console.ToString(), Does.Contain("from a background queue thread"), "still echoed");
    }

    [Test]
    public async Task Console_AfterTheCommand_IsTheOneItWasBefore()
    {
        var before = Console.Out;

        await Commands.RunAsync("noop", [], ct => Task.FromResult(0));

        Assert.That(Console.Out, Is.SameAs(before));
        Console.WriteLine("after");
        await _host.FlushAsync();
        Assert.That((await SingleCommandAsync()).Output, Is.Null);
    }

    private async Task<CommandLog> SingleCommandAsync() => (await CommandsAsync(1)).Single();

    private async Task<List<CommandLog>> CommandsAsync(int count)
    {
        await _host.FlushAsync();
        var logs = await _host.QueryAsync(db => db.CommandLogs.AsNoTracking().ToListAsync());
        Assert.That(logs, Has.Count.EqualTo(count));
        Assert.That(logs.Select(l => l.IsSuccessful), Has.None.Null, "every command finished");
        return logs;
    }
}
