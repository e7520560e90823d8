using JobLog.Worker.Demo;
using Microsoft.Playwright;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>
/// Refreshes docs/screenshots/*.png from the real Worker with an hour of demo-like history plus a live demo round.
/// Explicit: run it with <c>dotnet test tests/JobLog.Worker.Tests --filter Name=Screenshots_OfOverviewAndTaskDetail</c>.
/// </summary>
[Explicit("Writes docs/screenshots; run on demand.")]
[Category("Browser")]
public class Screenshots
{
    [Test]
    public async Task Screenshots_OfOverviewAndTaskDetail()
    {
        var directory = Path.Combine(RepositoryRoot(), "docs", "screenshots");
        Directory.CreateDirectory(directory);
        await using var chromium = await Chromium.LaunchAsync();
        await using var worker = await WorkerHost.StartAsync();
        var history = DemoLedger.History(DateTime.UtcNow.AddSeconds(-20));
        await worker.SeedAsync(history);
        await DemoPublisher.PublishAsync(worker.Services.GetRequiredService<global::MassTransit.IBus>(), 1, CancellationToken.None);
        var invoice = await worker.PublishAndWaitAsync(new SendInvoice(5120, "ana@example.com"));

        await using var context = await chromium.Browser.NewContextAsync(new()
        {
            BaseURL = worker.Url,
            ViewportSize = new() { Width = 1360, Height = 900 },
            DeviceScaleFactor = 1,
        });
        var page = await context.NewPageAsync();
        await page.GotoAsync("/joblog");
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        await page.ScreenshotAsync(new() { Path = Path.Combine(directory, "overview.png"), FullPage = true });

        await page.GotoAsync($"/joblog/tasks/{invoice.Id}");
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        await page.ScreenshotAsync(new() { Path = Path.Combine(directory, "task.png"), FullPage = true });

        await page.GotoAsync("/joblog/tasks?since=1h");
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        await page.ScreenshotAsync(new() { Path = Path.Combine(directory, "tasks.png") });

        Assert.That(new FileInfo(Path.Combine(directory, "overview.png")).Length, Is.GreaterThan(10_000));
        Assert.That(new FileInfo(Path.Combine(directory, "task.png")).Length, Is.GreaterThan(10_000));
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "JobLog.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("JobLog.sln not found above " + AppContext.BaseDirectory);
    }
}
