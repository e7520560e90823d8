using System.Net;
using System.Text.Json;
using JobLog.Testing;
using JobLog.Testing.Hostile;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>The Hosts page and <c>api/hosts</c>: every instance with its heartbeat, state and ACTIVE runs; host names are text, never markup.</summary>
public class HostsPageTests
{
    private const string Script = "<script>alert(1)</script>";
    private const string Img = "\"><img src=x onerror=alert(1)>";
    private const string Bidi = "invoice\u202Efdp.exe";

    private DashboardHost _host = null!;

    [SetUp]
    public async Task SetUp() => _host = await DashboardHost.StartAsync(TestLedger.Sqlite());

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    private static HostLog Host(string name, DateTime lastHeartbeat, DateTime? stoppedAt = null, string? release = null) => new()
    {
        InstanceId = Guid.NewGuid(), Name = name, ProcessId = 77, Release = release, StartedAt = lastHeartbeat.AddHours(-1),
        LastHeartbeat = lastHeartbeat, StoppedAt = stoppedAt,
    };

    [Test]
    public async Task HostsPage_ShowsHostileNamesEncoded()
    {
        var now = DateTime.UtcNow;
        var hostile = HostileCase.All().First().Marker;
        await _host.SeedAsync(Host("worker" + Script + Img + Bidi, now, release: "1.0" + Img + hostile));

        var html = await _host.GetStringAsync("/joblog/hosts");
        var decoded = WebUtility.HtmlDecode(html);

        Assert.That(html, Does.Not.Contain("<script>alert"));
        Assert.That(html, Does.Not.Contain("<img src=x"));
        Assert.That(decoded, Does.Contain("worker<script>alert(1)</script>"));
        Assert.That(decoded.Where(c => c is >= '\u202a' and <= '\u202e'), Is.Empty);
        Assert.That(html, Does.Contain("href=\"/joblog/hosts\""), "linked from the navigation");
    }

    [Test]
    public async Task HostsApi_GivesEachInstanceItsStateAndActiveRuns()
    {
        var now = DateTime.UtcNow;
        var alive = Host("alive", now);
        var late = Host("late", now.AddSeconds(-40));
        var dead = Host("dead", now.AddMinutes(-10));
        var stopped = Host("stopped", now.AddMinutes(-1), stoppedAt: now.AddMinutes(-1));
        var task = Rows.Task("Report", now.AddMinutes(-20), TaskState.Active);
        var run = Rows.Run(task, 0, TaskRunState.Active, 0, null);
        run.HostInstanceId = dead.InstanceId;
        await _host.SeedAsync(alive, late, dead, stopped, task, run);

        var json = await _host.GetStringAsync("/joblog/api/hosts");

        var rows = JsonDocument.Parse(json).RootElement.EnumerateArray()
            .ToDictionary(e => e.GetProperty("name").GetString()!, e => (e.GetProperty("state").ToString(), e.GetProperty("activeRuns").GetInt32()));
        Assert.That(rows["alive"], Is.EqualTo(("alive", 0)));
        Assert.That(rows["late"].Item1, Is.EqualTo("late"));
        Assert.That(rows["dead"], Is.EqualTo(("dead", 1)));
        Assert.That(rows["stopped"].Item1, Is.EqualTo("stopped"));
    }

    // Session 33: the stranded warnings (3012, 3205) were in the logs only; the heartbeat carries them to the host's row.
    [Test]
    public async Task HostsPageAndApi_ShowWhatAHostFoundStranded_Encoded()
    {
        var now = DateTime.UtcNow;
        var stranded = Host("scheduler", now);
        stranded.Stranded = "2 scheduled messages overdue by more than 00:00:10 for a broker none of this process's buses reaches (the earliest for rabbitmq://other/" + Script + ")";
        var quiet = Host("quiet", now);
        await _host.SeedAsync(stranded, quiet);

        var html = await _host.GetStringAsync("/joblog/hosts");
        Assert.That(html, Does.Not.Contain("<script>alert"));
        Assert.That(WebUtility.HtmlDecode(html), Does.Contain("STRANDED</span> " + stranded.Stranded));
        Assert.That(html.Split("class=\"stranded\"").Length - 1, Is.EqualTo(1), "one line, for the host that found something (the dashboard's own host found nothing)");

        var rows = JsonDocument.Parse(await _host.GetStringAsync("/joblog/api/hosts")).RootElement.EnumerateArray()
            .ToDictionary(e => e.GetProperty("name").GetString()!, e => e.GetProperty("stranded").GetString());
        Assert.That((rows["scheduler"], rows["quiet"]), Is.EqualTo((stranded.Stranded, (string?)null)));
    }

    // Session 30 (faults; session 29's open item): on PostgreSQL a heartbeat is stamped with the database's clock, but the
    // page's "(... ago)" took the dashboard's own clock: a dashboard 10 minutes ahead showed a live host "(10 min ago)".
    [Test]
    public async Task HostsPage_OnPostgres_WithTheDashboardsClockTenMinutesAhead_ShowsTheHeartbeatsAgeByTheDatabasesClock()
    {
        var ledger = await TestLedger.PostgresAsync();
        await using var host = await DashboardHost.StartAsync(ledger,
            services: b => b.Services.AddSingleton<TimeProvider>(new FakeTimeProvider(DateTimeOffset.UtcNow.AddMinutes(10))));
        var beating = Host("beating", DateTime.UtcNow);
        await host.SeedAsync(beating);
        await using (var scope = host.Services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().Database.ExecuteSqlAsync(
                $"UPDATE \"JobLogHosts\" SET \"LastHeartbeat\" = now() - interval '5 seconds' WHERE \"InstanceId\" = {beating.InstanceId}");
        }

        var html = await host.GetStringAsync("/joblog/hosts");
        var json = await host.GetStringAsync("/joblog/api/hosts");

        var row = html[html.IndexOf(beating.InstanceId.ToString(), StringComparison.Ordinal)..];
        Assert.That(row[..row.IndexOf("</tr>", StringComparison.Ordinal)], Does.Contain("s ago)").And.Not.Contain("min ago"));
        var since = JsonDocument.Parse(json).RootElement.EnumerateArray().Single(e => e.GetProperty("name").GetString() == "beating").GetProperty("secondsSinceHeartbeat").GetDouble();
        Assert.That(since, Is.InRange(5, 60), "seconds since the heartbeat, by the database's clock");
    }
}
