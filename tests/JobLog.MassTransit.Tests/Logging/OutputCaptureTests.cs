using System.Collections.Concurrent;
using JobLog.Recording;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NLog.Extensions.Logging;
using NUnit.Framework;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace JobLog.MassTransit.Tests.Logging;

public sealed record WriteReport(int Lines);

/// <summary>The application's own EF Core context (registered with AddDbContext, so EF Core logs its SQL through the application's logging).</summary>
public sealed class ReportsDbContext(DbContextOptions<ReportsDbContext> options) : DbContext(options);

/// <summary>Logs through ILogger&lt;T&gt;, through a factory-made logger, and runs an EF Core query (whose SQL is logged).</summary>
public sealed class WriteReportConsumer(ILogger<WriteReportConsumer> logger, ILoggerFactory factory, ReportsDbContext db) : IConsumer<WriteReport>
{
    public async Task Consume(ConsumeContext<WriteReport> context)
    {
        logger.LogInformation("report started");
        logger.LogDebug("a debug line below the capture level");
        factory.CreateLogger("Reports.Renderer").LogWarning("renderer is slow");
        await db.Database.ExecuteSqlRawAsync("SELECT 1");
        for (var i = 1; i <= context.Message.Lines; i++)
        {
            logger.LogInformation("report line {Line:0000}", i);
        }

        // Enrichment an application adds: a Serilog LogContext property (with Enrich.FromLogContext) and an ILogger scope.
        using (Serilog.Context.LogContext.PushProperty("Tenant", "acme"))
        using (logger.BeginScope("report for {Customer}", "c-42"))
        {
            logger.LogInformation("report enriched");
        }

        logger.LogInformation("report finished");

        // Serilog's static logger, as many Serilog applications log (not through ILogger<T>).
        Log.ForContext<WriteReportConsumer>().Information("a static Serilog line {Number}", 7);
    }
}

public sealed record Interleave(int Id);

/// <summary>Logs its id at each of five steps, through ILogger&lt;T&gt; and Serilog's static logger, yielding between them.</summary>
public sealed class InterleaveConsumer(ILogger<InterleaveConsumer> logger) : IConsumer<Interleave>
{
    public async Task Consume(ConsumeContext<Interleave> context)
    {
        for (var step = 1; step <= 5; step++)
        {
            logger.LogInformation("interleave {Id} step {Step}", context.Message.Id, step);
            await Task.Delay(5 + Random.Shared.Next(20));
            Log.Information("interleave {Id} static {Step}", context.Message.Id, step);
            await Task.Yield();
        }
    }
}

/// <summary>Run output captured whatever logging provider the application uses (issue 10 item 7).</summary>
[TestFixture]
public class OutputCaptureTests
{
    private TestLedger? _ledger;
    private IHost? _host;

    [SetUp]
    public void SetUp() => _ledger = TestLedger.Sqlite();

    [TearDown]
    public async Task TearDown()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
            _host = null;
        }

        await _ledger!.DisposeAsync();
    }

    private void AddJobLogAndBus(IServiceCollection services, Action<JobLogOptions>? options = null)
    {
        services.AddJobLog(o =>
        {
            _ledger!.Apply(o);
            o.Sweeper.Enabled = false;
            options?.Invoke(o);
        });
        services.AddDbContext<ReportsDbContext>(o => o.UseSqlite(_ledger!.ConnectionString));
        services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
        services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.AddConsumer<WriteReportConsumer>();
            x.AddConsumer<InterleaveConsumer>().Endpoint(e =>
            {
                e.ConcurrentMessageLimit = 16;
                e.PrefetchCount = 16;
            });
            x.UsingInMemory((context, cfg) =>
            {
                cfg.UseTaskLogging(context);
                cfg.ConfigureEndpoints(context);
            });
        });
    }

    private async Task<string?> ConsumeAsync(int lines = 2)
    {
        await _host!.StartAsync();
        var id = NewId.NextGuid();
        await _host.Services.GetRequiredService<IBus>().Publish(new WriteReport(lines), x => x.MessageId = id);
        TaskRunLog? run = null;
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                await _host.Services.GetRequiredService<LedgerRecorder>().FlushAsync(TimeSpan.FromSeconds(10));
                await using var scope = _host.Services.CreateAsyncScope();
                run = await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().TaskRunLogs.AsNoTracking()
                    .SingleOrDefaultAsync(r => r.TaskId == id);
                return run?.State == TaskRunState.Succeeded;
            },
            TimeSpan.FromSeconds(30),
            "the report was consumed");
        return run!.Output;
    }

    /// <param name="output">The run's output.</param>
    /// <param name="factoryLoggers">
    /// Whether loggers made with ILoggerFactory.CreateLogger are captured: yes with Microsoft.Extensions.Logging's factory
    /// (NLog is one of its providers) and with a factory registered before AddJobLog; ILogger&lt;T&gt; is captured always.
    /// </param>
    private static void AssertHoldsTheConsumersLinesOnly(string? output, bool factoryLoggers = true)
    {
        Assert.That(output, Does.Contain("info JobLog.MassTransit.Tests.Logging.WriteReportConsumer: report started"));
        if (factoryLoggers)
        {
            Assert.That(output, Does.Contain("warn Reports.Renderer: renderer is slow"));
        }

        Assert.That(output, Does.Contain("report finished"));
        Assert.That(output, Does.Not.Contain("a debug line"), "below OutputCapture.Level");
        Assert.That(output, Does.Not.Contain("Microsoft.EntityFrameworkCore").And.Not.Contain("SELECT"), "EF Core's SQL is not the consumer's output");
        Assert.That(output, Does.Not.Contain(" MassTransit."), "the bus's own lines are not the consumer's output");
        Assert.That(output!.Split("report started").Length - 1, Is.EqualTo(1), "each line once");
    }

    /// <summary>A host with JobLog and the bus, and Serilog's <c>UseSerilog</c> before or after <c>AddJobLog</c>.</summary>
    private IHost BuildWithSerilog(bool serilogBeforeJobLog, Action<LoggerConfiguration> configure, bool writeToProviders = false)
    {
        void UseSerilog(IHostBuilder b) => b.UseSerilog((_, c) => configure(c), writeToProviders: writeToProviders);
        var builder = new HostBuilder();
        if (serilogBeforeJobLog)
        {
            UseSerilog(builder);
        }

        builder.ConfigureServices(services => AddJobLogAndBus(services));
        if (!serilogBeforeJobLog)
        {
            UseSerilog(builder);
        }

        return builder.Build();
    }

    [Test]
    public async Task Output_WithSerilogUseSerilog_HoldsTheConsumersLines([Values] bool serilogBeforeJobLog)
    {
        var sink = new ListSink();
        _host = BuildWithSerilog(serilogBeforeJobLog, c => c.MinimumLevel.Warning().WriteTo.Sink(sink));

        var output = await ConsumeAsync();

        AssertHoldsTheConsumersLinesOnly(output, factoryLoggers: serilogBeforeJobLog);
        Assert.That(sink.Messages, Does.Contain("renderer is slow"), "Serilog still writes the application's lines");
        Assert.That(sink.Messages, Does.Not.Contain("report started"), "below Serilog's own minimum level: captured, not written by Serilog");
    }

    /// <summary>
    /// Serilog's static <c>Log</c> (<c>Log.Information</c>, <c>Log.ForContext&lt;T&gt;()</c>) bypasses ILogger&lt;T&gt;; with
    /// <c>writeToProviders: true</c> Serilog hands its events to the registered providers, JobLog's among them.
    /// </summary>
    [Test]
    public async Task Output_WithSerilogsStaticLogAndWriteToProviders_HoldsItsLinesOnce([Values] bool serilogBeforeJobLog)
    {
        var sink = new ListSink();
        _host = BuildWithSerilog(serilogBeforeJobLog, c => c.MinimumLevel.Information().WriteTo.Sink(sink), writeToProviders: true);

        var output = await ConsumeAsync();

        AssertHoldsTheConsumersLinesOnly(output, factoryLoggers: serilogBeforeJobLog);
        Assert.That(output, Does.Contain("info JobLog.MassTransit.Tests.Logging.WriteReportConsumer: a static Serilog line 7"));
        Assert.That(output!.Split("a static Serilog line").Length - 1, Is.EqualTo(1), "once");
        Assert.That(sink.Messages, Does.Contain("a static Serilog line 7"), "Serilog still writes it");
    }

    /// <summary>
    /// Serilog's enrichment (<c>Enrich.FromLogContext()</c>, a <c>LogContext.PushProperty</c> and an ILogger scope around a
    /// line): the run's output holds the rendered message, as a sink's default template does; the properties are Serilog's
    /// (its sinks still get them), not part of the line.
    /// </summary>
    [Test]
    public async Task Output_WithSerilogEnrichment_HoldsTheRenderedLine_SerilogKeepsItsProperties()
    {
        var sink = new ListSink();
        _host = BuildWithSerilog(true, c => c.MinimumLevel.Information().Enrich.FromLogContext().WriteTo.Sink(sink));

        var output = await ConsumeAsync();

        TestContext.Out.WriteLine(output);
        Assert.That(output, Does.Contain("info JobLog.MassTransit.Tests.Logging.WriteReportConsumer: report enriched\n").Or.EndWith("report enriched"));
        Assert.That(sink.Properties, Does.Contain("Tenant=\"acme\"").And.Contain("Customer=\"c-42\""), "Serilog's events keep the enrichment");
    }

    /// <summary>
    /// Sixteen consumers at once under Serilog (<c>UseSerilog</c> with <c>writeToProviders</c>, its static logger too), each
    /// logging its id at five steps with awaits between: each run's output holds its own ten lines, no other run's.
    /// </summary>
    [Test]
    public async Task Output_WithSerilog_ConcurrentConsumers_EachRunHoldsItsOwnLinesOnly([Values] bool serilogBeforeJobLog)
    {
        var sink = new ListSink();
        _host = BuildWithSerilog(serilogBeforeJobLog, c => c.MinimumLevel.Information().WriteTo.Sink(sink), writeToProviders: true);
        await _host.StartAsync();
        var bus = _host.Services.GetRequiredService<IBus>();
        var ids = Enumerable.Range(1, 16).ToDictionary(i => i, _ => NewId.NextGuid());
        await Task.WhenAll(ids.Select(p => bus.Publish(new Interleave(p.Key), x => x.MessageId = p.Value)));

        List<TaskRunLog> runs = [];
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                await _host.Services.GetRequiredService<LedgerRecorder>().FlushAsync(TimeSpan.FromSeconds(10));
                await using var scope = _host.Services.CreateAsyncScope();
                var taskIds = ids.Values.ToList();
                runs = await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().TaskRunLogs.AsNoTracking()
                    .Where(r => taskIds.Contains(r.TaskId)).ToListAsync();
                return runs.Count == ids.Count && runs.All(r => r.State == TaskRunState.Succeeded);
            },
            TimeSpan.FromSeconds(60),
            "every interleaving message was consumed");

        var overlapped = runs.Count(r => runs.Any(o => o.Id != r.Id && o.Start < r.Stop && r.Start < o.Stop));
        TestContext.Out.WriteLine($"{overlapped} of {runs.Count} runs overlapped another");
        Assert.That(overlapped, Is.GreaterThan(1), "the consumers ran at the same time");
        foreach (var (id, taskId) in ids)
        {
            var output = runs.Single(r => r.TaskId == taskId).Output ?? "";
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var expected = Enumerable.Range(1, 5).SelectMany(step => new[] { $"interleave {id} step {step}", $"interleave {id} static {step}" }).ToList();
            Assert.That(lines.Select(l => l[(l.IndexOf(": ", StringComparison.Ordinal) + 2)..]), Is.EqualTo(expected), $"run of message {id}:\n{output}");
        }

        Assert.That(sink.Messages.Count(m => m.StartsWith("interleave ", StringComparison.Ordinal)), Is.EqualTo(16 * 10), "Serilog still writes every line");
    }

    [Test]
    public async Task Output_WithSerilogAddSerilogOnAnApplicationBuilder_HoldsTheConsumersLines()
    {
        var sink = new ListSink();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        AddJobLogAndBus(builder.Services);
        builder.Services.AddSerilog(c => c.MinimumLevel.Information().WriteTo.Sink(sink));
        _host = builder.Build();

        var output = await ConsumeAsync();

        AssertHoldsTheConsumersLinesOnly(output, factoryLoggers: false);
        Assert.That(sink.Messages, Does.Contain("report started"));
    }

    [Test]
    public async Task Output_WithNLog_HoldsTheConsumersLines([Values] bool nlogBeforeJobLog)
    {
        var memory = new NLog.Targets.MemoryTarget("memory") { Layout = "${logger}|${message}" };
        var config = new NLog.Config.LoggingConfiguration();
        config.AddRule(NLog.LogLevel.Info, NLog.LogLevel.Fatal, memory);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        void UseNLog() => builder.Logging.ClearProviders().AddNLog(config);
        if (nlogBeforeJobLog)
        {
            UseNLog();
        }

        AddJobLogAndBus(builder.Services);
        if (!nlogBeforeJobLog)
        {
            UseNLog();
        }

        _host = builder.Build();

        var output = await ConsumeAsync();

        AssertHoldsTheConsumersLinesOnly(output);
        Assert.That(memory.Logs, Does.Contain("JobLog.MassTransit.Tests.Logging.WriteReportConsumer|report started"), "NLog still writes the application's lines");
    }

    [Test]
    public async Task Output_WithMicrosoftExtensionsLogging_HoldsTheConsumersLines_NotEfCoresSql()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Information);
        AddJobLogAndBus(builder.Services);
        _host = builder.Build();

        AssertHoldsTheConsumersLinesOnly(await ConsumeAsync());
    }

    [Test]
    public async Task Output_WithAnIncludedCategory_HoldsThatFrameworkCategoryToo()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSerilog(c => c.MinimumLevel.Warning());
        AddJobLogAndBus(builder.Services, o => o.OutputCapture.IncludedCategories.Add("Microsoft.EntityFrameworkCore.Database.Command"));
        _host = builder.Build();

        var output = await ConsumeAsync();

        Assert.That(output, Does.Contain("Microsoft.EntityFrameworkCore.Database.Command").And.Contain("SELECT"));
        Assert.That(output, Does.Not.Contain("report started"), "with an inclusion list, only the included categories");
    }

    [Test]
    public async Task Output_LongerThanTheLimit_KeepsTheBeginningAndTheEnd_WithAMarker()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        AddJobLogAndBus(builder.Services, o => o.Redaction.MaxBodyLength = 4000);
        builder.Services.AddSerilog(c => c.MinimumLevel.Warning());
        _host = builder.Build();

        var output = await ConsumeAsync(lines: 2000);

        Assert.That(output!.Length, Is.LessThanOrEqualTo(4000));
        Assert.That(output, Does.Contain("report started").And.Contain("report line 0001"), "the beginning");
        Assert.That(output, Does.Contain("report line 2000").And.EndWith("report finished\n"), "the end");
        Assert.That(output, Does.Match(@"\[… [\d,]+ characters cut …\]"), "a marker says what was cut");
        Assert.That(output, Does.Not.Contain("report line 1000"));
    }

    private sealed class ListSink : ILogEventSink
    {
        private readonly ConcurrentQueue<string> _messages = new();

        private readonly ConcurrentQueue<string> _properties = new();

        public IReadOnlyCollection<string> Messages => _messages;

        /// <summary>Each event's properties, <c>Name=value</c>.</summary>
        public IReadOnlyCollection<string> Properties => _properties;

        public void Emit(LogEvent logEvent)
        {
            _messages.Enqueue(logEvent.RenderMessage());
            foreach (var (name, value) in logEvent.Properties)
            {
                _properties.Enqueue($"{name}={value}");
            }
        }
    }
}
