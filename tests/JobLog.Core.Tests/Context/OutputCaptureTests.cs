using System.Text;
using System.Text.RegularExpressions;
using JobLog.Context;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace JobLog.Core.Tests.Context;

public class OutputBufferTests
{
    [Test]
    public void Snapshot_UnderTheLimit_IsTheWholeText()
    {
        var buffer = new OutputBuffer(1000);
        buffer.Append("one\n");
        buffer.Append("two\n");

        Assert.That(buffer.Snapshot(), Is.EqualTo("one\ntwo\n"));
        Assert.That(buffer.Truncated, Is.False);
    }

    [Test]
    public void Snapshot_OverTheLimit_KeepsTheFirstAndTheLastLines_AndSaysHowMuchWasCut()
    {
        var buffer = new OutputBuffer(1000);
        var all = new StringBuilder();
        for (var i = 0; i < 500; i++)
        {
            var line = $"line {i:000}\n";
            all.Append(line);
            buffer.Append(line);
        }

        var snapshot = buffer.Snapshot()!;
        var marker = Regex.Match(snapshot, @"\[… ([\d,]+) characters cut …\]\n");

        Assert.That(snapshot.Length, Is.LessThanOrEqualTo(1000));
        Assert.That(snapshot, Does.StartWith("line 000\nline 001\n").And.EndWith("line 498\nline 499\n"));
        Assert.That(marker.Success, Is.True, snapshot);
        var head = snapshot[..marker.Index];
        var tail = snapshot[(marker.Index + marker.Length)..];
        Assert.That(all.ToString(), Does.StartWith(head).And.EndWith(tail), "whole lines on both sides of the marker");
        Assert.That(int.Parse(marker.Groups[1].Value.Replace(",", "")), Is.EqualTo(all.Length - head.Length - tail.Length));
        Assert.That(buffer.Truncated, Is.True);
    }

    [Test]
    public void Snapshot_KeepingTheEndOnly_StartsWithAnEllipsisLine()
    {
        var buffer = new OutputBuffer(300, keepBeginning: false);
        for (var i = 0; i < 100; i++)
        {
            buffer.Append($"row {i:000}\n");
        }

        Assert.That(buffer.Snapshot(), Does.StartWith("…\n").And.EndWith("row 099\n").And.Not.Contain("row 000"));
    }
}

public class OutputCaptureCategoryTests
{
    private static OutputCapture Capture(Action<OutputCaptureOptions>? configure = null)
    {
        var options = new JobLogOptions();
        configure?.Invoke(options.OutputCapture);
        return new OutputCapture(Options.Create(options), TimeProvider.System, new JobLog.Redaction.Redactor(options.Redaction));
    }

    [TestCase("Billing.ChargeCardConsumer", true)]
    [TestCase("Microsoft.EntityFrameworkCore.Database.Command", false)]
    [TestCase("System.Net.Http.HttpClient.Default.LogicalHandler", false)]
    [TestCase("MassTransit.ReceiveTransport", false)]
    [TestCase("Npgsql.Command", false)]
    [TestCase("MicrosoftStore.Orders", true)]
    public void Defaults_CaptureTheApplicationsCategories_NotTheFrameworks(string category, bool captured) =>
        Assert.That(Capture().Captures(category), Is.EqualTo(captured));

    [Test]
    public void AnIncludedCategory_BelowAnExcludedPrefix_IsCaptured_AndOthersAreNot()
    {
        var capture = Capture(o => o.IncludedCategories.Add("Microsoft.EntityFrameworkCore.Database.Command"));

        Assert.That(capture.Captures("Microsoft.EntityFrameworkCore.Database.Command"), Is.True);
        Assert.That(capture.Captures("Microsoft.EntityFrameworkCore.Infrastructure"), Is.False);
        Assert.That(capture.Captures("Billing.ChargeCardConsumer"), Is.False, "with an inclusion list, only what it includes");
    }

    [Test]
    public void LevelNone_CapturesNothing() =>
        Assert.That(Capture(o => o.Level = LogLevel.None).Captures("Billing.ChargeCardConsumer"), Is.False);
}

public class OutputCaptureRegistrationTests
{
    [Test]
    public async Task AddJobLog_KeepsTheApplicationsLoggingFiltersAndProviders()
    {
        var provider = new RecordingProvider();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(provider).SetMinimumLevel(LogLevel.Warning).AddFilter("Noisy", LogLevel.Error));
        services.AddJobLog(o => o.UseSqlite("Data Source=unused.db"));
        await using var sp = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });

        var factory = sp.GetRequiredService<ILoggerFactory>();
        var typed = sp.GetRequiredService<ILogger<OutputCaptureRegistrationTests>>();
        factory.CreateLogger("App").LogInformation("dropped: below the minimum level");
        factory.CreateLogger("App").LogWarning("kept");
        factory.CreateLogger("Noisy.Thing").LogWarning("dropped: filtered");
        typed.LogWarning("typed kept");

        Assert.That(provider.Lines, Is.EqualTo(new[] { "App: kept", "JobLog.Core.Tests.Context.OutputCaptureRegistrationTests: typed kept" }));
        Assert.That(typed.IsEnabled(LogLevel.Information), Is.False, "outside a run, the application's own level decides");
    }

    private sealed class RecordingProvider : ILoggerProvider
    {
        public List<string> Lines { get; } = [];

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, Lines);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, List<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Add($"{category}: {formatter(state, exception)}");
        }
    }
}
