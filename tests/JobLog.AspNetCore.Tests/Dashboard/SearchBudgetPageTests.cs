using System.Net;
using System.Text.Json;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// Issue 15: a search that runs out of its read budget (<see cref="JobLogOptions.SearchBudget"/>) is a 200 that says so,
/// not a 500: the task list shows the notice, the API has <c>searchStopped</c>. 200 tasks of 50,000 <c>(</c>: checking
/// one for the hostile text compares up to 200 characters at each of its positions, against a budget of 1 ms, which
/// runs out before the first window is read whole or while it is read (either way the page is flagged with no rows;
/// with 5,000 characters and 50 ms, one clean-clone CI run's page came back whole and unflagged: the reads finished in
/// time).
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class SearchBudgetPageTests(LedgerProvider provider)
{
    private static readonly string Hostile = Uri.EscapeDataString(new string('(', 199) + ")");

    private DashboardHost _host = null!;

    [SetUp]
    public async Task SetUp()
    {
        _host = await DashboardHost.StartAsync(
            await Ledgers.CreateAsync(provider),
            services: b => b.Services.Configure<JobLogOptions>(o => o.SearchBudget = TimeSpan.FromMilliseconds(1)));
        _host.Client.Timeout = TimeSpan.FromSeconds(100);
        var now = DateTime.UtcNow;
        await _host.SeedAsync([.. Enumerable.Range(0, 200).Select(i => Rows.Task("Charge", now.AddSeconds(-i), input: new string('(', 50_000)))]);
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task TheTaskList_WhoseSearchRanOutOfItsBudget_ShowsTheNotice()
    {
        var response = await _host.Client.GetAsync("/joblog/tasks?q=" + Hostile);
        var html = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(html, Does.Contain("<div class=\"alert\" id=\"search-stopped\">The search stopped after 1 ms; it found no tasks in that time."));

        // Without q the same list reads as before: the connection the search was cut on answers.
        var plain = await _host.Client.GetAsync("/joblog/api/tasks?limit=500");
        using var rows = JsonDocument.Parse(await plain.Content.ReadAsStringAsync());
        Assert.That(rows.RootElement.GetProperty("items").GetArrayLength(), Is.EqualTo(200));
        Assert.That(rows.RootElement.TryGetProperty("searchStopped", out _), Is.False);
    }

    [Test]
    public async Task TheTasksApi_WhoseSearchRanOutOfItsBudget_AnswersA200_WithSearchStopped()
    {
        var response = await _host.Client.GetAsync("/joblog/api/tasks?q=" + Hostile);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(json.RootElement.GetProperty("items").GetArrayLength(), Is.Zero);
        var stopped = json.RootElement.GetProperty("searchStopped");
        Assert.That(stopped.GetProperty("budget").GetString(), Is.EqualTo("00:00:00.0010000"));
        Assert.That(stopped.GetProperty("searchedBackTo").ValueKind, Is.EqualTo(JsonValueKind.Null));
    }
}
