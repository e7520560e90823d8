using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using JobLog.Failures.Alerts;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Failures;

/// <summary>The alerter against a webhook receiver on loopback (Kestrel): one alert per new group, cool-down, outages.</summary>
public class FailureAlerterTests
{
    private static string Error(string type) => $"Shop.{type}Exception: boom\n   at MassTransit.X.Y()\n   at Shop.{type}.Handle()";

    [Test]
    public async Task NewGroups_AreAlertedOnce_AsOutboundRequestsInTheLedger_AndBusyGroupsRespectTheCooldown()
    {
        await using var receiver = await Receiver.StartAsync();
        await using var host = await StartAsync(receiver, o => o.FailuresPerMinute = 3);
        var alerter = host.Services.GetRequiredService<FailureAlerter>();
        var now = DateTime.UtcNow;
        await SeedAsync(host, "Old", now.AddHours(-3));

        Assert.That(await alerter.RunOnceAsync(CancellationToken.None), Is.Zero, "a group from before the alerter started is not new");

        await SeedAsync(host, "Charge", now, now);
        Assert.That(await alerter.RunOnceAsync(CancellationToken.None), Is.EqualTo(1));
        Assert.That(await alerter.RunOnceAsync(CancellationToken.None), Is.Zero, "known, and under the rate");
        await SeedAsync(host, "Charge", now, now);
        Assert.That(await alerter.RunOnceAsync(CancellationToken.None), Is.Zero, "4 per minute passes the threshold, but within the cool-down");
        await SeedAsync(host, "Stock", now);
        Assert.That(await alerter.RunOnceAsync(CancellationToken.None), Is.EqualTo(1));

        var texts = receiver.Bodies.Select(b => JsonDocument.Parse(b).RootElement.GetProperty("text").GetString()).ToList();
        Assert.That(texts, Has.Count.EqualTo(2));
        Assert.That(texts[0], Does.StartWith("New failure group: Shop.ChargeException at Shop.Charge.Handle (2 open"));
        Assert.That(texts[1], Does.StartWith("New failure group: Shop.StockException at Shop.Stock.Handle"));
        await host.FlushAsync();
        var recorded = await host.QueryAsync(db => db.OutputRequestLogs.CountAsync(r => r.Slug == "joblog-alerts"));
        Assert.That(recorded, Is.EqualTo(2));
    }

    [Test]
    public async Task AFloodOfNewGroups_IsAtMostTenAlertsAndOneSummary_PerInterval()
    {
        // Distinct failure groups are cheap to make (a message type or queue per tenant, a producer naming its types):
        // each new one was a post, up to 500 per webhook per interval, and Slack's webhooks take about one a second.
        await using var receiver = await Receiver.StartAsync();
        await using var host = await StartAsync(receiver, _ => { });
        var alerter = host.Services.GetRequiredService<FailureAlerter>();
        var now = DateTime.UtcNow;
        for (var i = 0; i < 25; i++)
        {
            await SeedAsync(host, "Flood" + i.ToString("00", System.Globalization.CultureInfo.InvariantCulture), now.AddSeconds(-i));
        }

        var first = await alerter.RunOnceAsync(CancellationToken.None);
        var second = await alerter.RunOnceAsync(CancellationToken.None);

        var texts = receiver.Bodies.Select(b => JsonDocument.Parse(b).RootElement.GetProperty("text").GetString()!).ToList();
        Assert.That((first, second), Is.EqualTo((11, 0)), string.Join("\n", texts));
        Assert.That(texts.Take(10), Has.All.StartWith("New failure group: Shop.Flood"));
        Assert.That(texts[10], Does.StartWith("15 more failure groups to alert: see the Failures page"));
    }

    [Test]
    public async Task ResolvedGroups_AreForgotten_SoTheAlertersMemoryStaysBounded_AndAGroupFailingAgainIsNewAgain()
    {
        // Over a long life every distinct group id read was kept (known, and its alert time): a flood of made-up groups
        // grew the process without bound, resolved or not.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var receiver = await Receiver.StartAsync();
        await using var host = await StartAsync(receiver, _ => { }, s => s.AddSingleton<TimeProvider>(clock));
        var alerter = host.Services.GetRequiredService<FailureAlerter>();
        var now = clock.GetUtcNow().UtcDateTime;
        for (var i = 0; i < 25; i++)
        {
            await SeedAsync(host, "Flood" + i.ToString("00", System.Globalization.CultureInfo.InvariantCulture), now);
        }

        var first = await alerter.RunOnceAsync(CancellationToken.None);
        var heldAfterFirst = alerter.Remembered;
        await host.QueryAsync(db => db.TaskLogs.Where(t => t.State == TaskState.Failed)
            .ExecuteUpdateAsync(u => u.SetProperty(t => t.Resolution, JobLog.Failures.FailureResolution.Resolved)));
        var afterResolution = await alerter.RunOnceAsync(CancellationToken.None);
        var heldAfterResolution = alerter.Remembered;
        clock.Advance(TimeSpan.FromMinutes(16));
        await alerter.RunOnceAsync(CancellationToken.None);
        var heldAfterCooldown = alerter.Remembered;
        await SeedAsync(host, "Flood03", clock.GetUtcNow().UtcDateTime);
        var again = await alerter.RunOnceAsync(CancellationToken.None);

        Assert.That((first, heldAfterFirst, afterResolution, heldAfterResolution, heldAfterCooldown, again), Is.EqualTo((11, 50, 0, 25, 0, 1)),
            "(alerts, ids and alert times held) after the flood, its resolution, the cool-down, and one group failing again");
        var texts = receiver.Bodies.Select(b => JsonDocument.Parse(b).RootElement.GetProperty("text").GetString()!).ToList();
        Assert.That(texts[^1], Does.StartWith("New failure group: Shop.Flood03Exception at Shop.Flood03.Handle (1 open"));
    }

    [Test]
    public async Task AWebhookThatHangsOrFails_DoesNotBlock_AndTheAlerterRecovers()
    {
        // A failed webhook is posted to again after a back-off (ADeadWebhook_…), here at most the 1 h interval: the clock passes it.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var receiver = await Receiver.StartAsync();
        await using var host = await StartAsync(receiver, o => o.Timeout = TimeSpan.FromSeconds(1), s => s.AddSingleton<TimeProvider>(clock));
        var alerter = host.Services.GetRequiredService<FailureAlerter>();
        await alerter.StopAsync(CancellationToken.None); // the test runs the iterations
        await SeedAsync(host, "Charge", clock.GetUtcNow().UtcDateTime);

        receiver.Hang = true;
        var watch = Stopwatch.StartNew();
        var whileHanging = await alerter.RunOnceAsync(CancellationToken.None);
        watch.Stop();
        receiver.Hang = false;
        receiver.Down = true;
        var backingOff = await alerter.RunOnceAsync(CancellationToken.None);
        clock.Advance(TimeSpan.FromHours(1));
        var whileDown = await alerter.RunOnceAsync(CancellationToken.None);
        receiver.Down = false;
        clock.Advance(TimeSpan.FromHours(1));
        var recovered = await alerter.RunOnceAsync(CancellationToken.None);

        Assert.That((whileHanging, backingOff, whileDown, recovered), Is.EqualTo((0, 0, 0, 1)));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "bounded by the 1 s timeout");
        Assert.That(alerter.Failed, Is.EqualTo(2));
        Assert.That(receiver.Bodies, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task ADeadWebhook_IsLoggedOnceWithItsStack_ThenCountedAtASteadyRate_TriedLessOften_AndAlertsOnceItAnswers()
    {
        // A failed post leaves the group new, so a dead webhook was posted to and logged (warning 1121 with a stack trace)
        // at every interval, for every new group, for as long as it stayed dead.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var warnings = new WarningCollector();
        var port = RefusedPort();
        var dead = new Uri($"http://127.0.0.1:{port}/hook");
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s =>
        {
            s.AddJobLogFailureAlerts(o =>
            {
                o.Webhooks.Add(new FailureAlertWebhook { Url = dead, Format = FailureAlertFormat.Slack });
                o.Interval = TimeSpan.FromSeconds(30);
                o.FailuresPerMinute = null;
            });
            s.AddSingleton<TimeProvider>(clock);
            s.AddSingleton<ILoggerProvider>(warnings);
        });
        var alerter = host.Services.GetRequiredService<FailureAlerter>();
        await alerter.StopAsync(CancellationToken.None); // the test runs the iterations, at the fake clock's intervals
        await SeedAsync(host, "Charge", clock.GetUtcNow().UtcDateTime);

        // An hour of intervals with the webhook refusing connections.
        const int Intervals = 120;
        for (var i = 0; i < Intervals; i++)
        {
            Assert.That(await alerter.RunOnceAsync(CancellationToken.None), Is.Zero);
            clock.Advance(TimeSpan.FromSeconds(30));
        }

        var posts = alerter.Failed;
        var logged = warnings.Texts(1121).Concat(warnings.Texts(1122)).ToList();
        TestContext.Out.WriteLine($"{Intervals} intervals: {posts} failed posts, {warnings.CountWithException(1121)} warnings 1121 with a stack, {warnings.Count(1122)} counts (1122)\n{string.Join("\n", logged)}");
        Assert.That(warnings.CountWithException(1121), Is.EqualTo(1), "the first failure is logged with its stack trace, once");
        Assert.That(posts, Is.InRange(5, 25), "posts back off (doubling from the interval, at most 5 min apart: about 16 in an hour)");
        Assert.That(warnings.Count(1122), Is.InRange(6, 13), "then a one-line count at most every 5 min");
        Assert.That(warnings.CountWithException(1122), Is.Zero, "the counts carry no stack trace");
        Assert.That(warnings.Texts(1122)[^1], Does.Contain("127.0.0.1:" + port).And.Contain("Connection refused"));

        // The webhook answers again: within the longest back-off the group, still new, is alerted.
        await using var receiver = await Receiver.StartAsync(port);
        var alerts = 0;
        for (var i = 0; i < 11 && alerts == 0; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(30));
            alerts = await alerter.RunOnceAsync(CancellationToken.None);
        }

        Assert.That(alerts, Is.EqualTo(1), "alerted within 5 min of the webhook's return");
        Assert.That(receiver.Bodies.Select(b => JsonDocument.Parse(b).RootElement.GetProperty("text").GetString()).Single(),
            Does.StartWith("New failure group: Shop.ChargeException"));
    }

    /// <summary>A loopback port nothing listens on (taken from the system, then closed).</summary>
    private static int RefusedPort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    [Test]
    public void Options_WithoutWebhookOrWithARelativeUrl_FailStartUp()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddJobLogFailureAlerts(_ => { });
        using var provider = services.BuildServiceProvider();
        Assert.Throws<OptionsValidationException>(() => _ = provider.GetRequiredService<IOptions<FailureAlertOptions>>().Value);

        var relative = new ServiceCollection().AddLogging();
        relative.AddJobLogFailureAlerts(o => o.Webhooks.Add(new FailureAlertWebhook { Url = new Uri("/hook", UriKind.Relative) }));
        using var second = relative.BuildServiceProvider();
        Assert.Throws<OptionsValidationException>(() => _ = second.GetRequiredService<IOptions<FailureAlertOptions>>().Value);
    }

    [TestCase(FailureAlertFormat.Slack, "text")]
    [TestCase(FailureAlertFormat.Teams, "@type")]
    [TestCase(FailureAlertFormat.Generic, "groupId")]
    public void Payload_HasTheWebhooksShape(FailureAlertFormat format, string property)
    {
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Exception, "K", "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), "e", new int[24]);

        var payload = FailureAlertPayload.Create(format, FailureAlertKind.NewGroup, group, 0, new Uri("https://ops.example.com/joblog/"));

        Assert.That(payload.ContainsKey(property));
        Assert.That(payload.ToJsonString(), Does.Contain("https://ops.example.com/joblog/failures/groups/0123456789abcdef?by=exception"));
    }

    [Test]
    public void SlackPayload_ShowsLedgerTextAsText_NotAsSlackMarkup()
    {
        // The group key reads the first frame-like line of the error text, and an exception message is the sender's
        // text: Slack read <!channel> as a mention of everyone and <url|label> as a link under any label.
        const string Error = "System.InvalidOperationException: bad email ann@x\n   at <!channel>|<https://evil.example/reset|Reset_your_password>(x)\n   at Shop.Orders.Handle()";
        var key = JobLog.Failures.FailureSignature.Parse(Error).ToString();
        Assert.That(key, Does.Contain("<!channel>|<https://evil.example"), "the shape under test");
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Exception, key, "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), Error, new int[24]);

        var text = FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup, group, 0, new Uri("https://ops.example.com/joblog/"))["text"]!.GetValue<string>();

        Assert.That(text, Does.Not.Contain("<").And.Not.Contain(">"));
        Assert.That(text, Does.Contain("&lt;!channel&gt;|&lt;https[:]//evil[.]example/reset|Reset_your_password&gt;"));
        Assert.That(text, Does.Contain(" https://ops.example.com/joblog/failures/groups/0123456789abcdef?by=exception"), "the dashboard's link stays a link");
    }

    [Test]
    public void SlackPayload_ShowsLedgerTextWithoutMrkdwnFormatting()
    {
        // Slack's mrkdwn has no escape for *, _, ~ and `: an exception's message set the operators' channel's text in
        // bold, italics, struck through or as code. The message is sent with mrkdwn off (its text is still escaped).
        const string Error = "System.InvalidOperationException: bad\n   at *URGENT*_call_~ops~_`now`(x)\n   at Shop.Orders.Handle()";
        var key = JobLog.Failures.FailureSignature.Parse(Error).ToString();
        Assert.That(key, Does.Contain("*URGENT*_call_~ops~_`now`"), "the shape under test");
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Exception, key, "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), Error, new int[24]);

        var payload = FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup, group, 0, new Uri("https://ops.example.com/joblog/"));

        Assert.That(payload["mrkdwn"]?.GetValue<bool>(), Is.False, "Slack reads the text as mrkdwn unless told not to");
        Assert.That(payload["text"]!.GetValue<string>(), Does.Contain("*URGENT*_call_~ops~_`now`"), "the text itself is kept as it is");
    }

    [Test]
    public void TeamsPayload_ShowsLedgerTextAsText_NotAsMarkdown()
    {
        // A MessageCard's text is Markdown: an exception's message set the operators' channel's text in bold, in a heading or a list.
        const string Error = "System.InvalidOperationException: bad\n   at **URGENT_call_[ops]_now**(x)\n   at Shop.Orders.Handle()";
        var key = JobLog.Failures.FailureSignature.Parse(Error).ToString();
        Assert.That(key, Does.Contain("**URGENT_call_[ops]_now**"), "the shape under test");
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Exception, key, "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), Error, new int[24]);

        var text = FailureAlertPayload.Create(FailureAlertFormat.Teams, FailureAlertKind.NewGroup, group, 0, new Uri("https://ops.example.com/joblog/"))["text"]!.GetValue<string>();

        Assert.That(text, Does.Not.Contain("**"));
        Assert.That(text, Does.Contain("\\*\\*URGENT\\_call\\_\\[ops\\]\\_now\\*\\*"));
        Assert.That(text, Does.EndWith(" https://ops.example.com/joblog/failures/groups/0123456789abcdef?by=exception"), "the dashboard's link stays a link");
    }

    [Test]
    public void SlackAndTeamsPayloads_DefangUrlsInTheKey_AndKeepTheDashboardsLink()
    {
        // Grouped by message type, the key is a task name, which a producer chooses: a URL-like URN (or a queue named
        // like a site) was turned into a link by Slack and Teams, even with mrkdwn off.
        const string Key = "urn:message:https://evil.example/reset?u=ops www.evil.example ann@evil.example";
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Type, Key, "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), null, new int[24]);
        var dashboard = new Uri("https://ops.example.com/joblog/");

        var slack = FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup, group, 0, dashboard)["text"]!.GetValue<string>();
        var teams = FailureAlertPayload.Create(FailureAlertFormat.Teams, FailureAlertKind.NewGroup, group, 0, dashboard)["text"]!.GetValue<string>();
        var generic = FailureAlertPayload.Create(FailureAlertFormat.Generic, FailureAlertKind.NewGroup, group, 0, dashboard)["key"]!.GetValue<string>();

        Assert.That(slack, Does.Contain("urn:message:https[:]//evil[.]example/reset?u=ops www[.]evil[.]example ann[@]evil[.]example"));
        Assert.That(teams, Does.Contain("urn:message:https\\[:\\]//evil\\[.\\]example/reset?u=ops www\\[.\\]evil\\[.\\]example ann\\[@\\]evil\\[.\\]example"));
        foreach (var text in new[] { slack, teams })
        {
            Assert.That(text, Does.Not.Contain("https://evil").And.Not.Contain("www.evil").And.Not.Contain("ann@evil"));
            Assert.That(text, Does.EndWith(" https://ops.example.com/joblog/failures/groups/0123456789abcdef?by=type"), "the dashboard's link stays a link");
        }

        Assert.That(generic, Is.EqualTo(Key), "a generic receiver gets the key as it is");
    }

    [Test]
    public void SlackAndTeamsPayloads_DefangABareHostFollowedByAPath_AsTheyDoAUrl()
    {
        // Without a scheme or "www.", a host and a path (evil.example/reset) still reads as a link, and chat clients link
        // it. (Without a path, a dotted name in a key a sender names is defanged too: DefangBareDottedNames….)
        const string Key = "urn:message:evil.example/reset?u=ops pay.evil.example:8443/x System.Net at Shop.Orders.Handle";
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Type, Key, "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), null, new int[24]);

        var slack = FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup, group, 0, null)["text"]!.GetValue<string>();
        var teams = FailureAlertPayload.Create(FailureAlertFormat.Teams, FailureAlertKind.NewGroup, group, 0, null)["text"]!.GetValue<string>();

        Assert.That(slack, Does.Contain("urn:message:evil[.]example/reset?u=ops pay[.]evil[.]example:8443/x System[.]Net at Shop[.]Orders[.]Handle"));
        Assert.That(teams, Does.Contain("urn:message:evil\\[.\\]example/reset?u=ops pay\\[.\\]evil\\[.\\]example:8443/x System\\[.\\]Net"));
    }

    [Test]
    public void SlackAndTeamsPayloads_DefangBareDottedNamesInKeysTheSenderNames_NotInExceptionSignatures()
    {
        // A dotted name without a scheme or a path (pay.evil.example, Evil.Com, an address) is linked by chat clients. A
        // message type's key is a name a producer chooses (a foreign producer's URN); an exception signature is named by
        // the application's code (its types and methods), where dotted names are type names.
        const string Named = "urn:message:pay.evil.example Evil.Com café.example 10.0.0.7 Shop.Orders.Placed";
        var now = DateTime.UtcNow;
        string Slack(JobLog.Failures.FailureGrouping by, string key) => FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup,
            new JobLog.Querying.FailureGroup("0123456789abcdef", by, key, "T", 1, now, now, Guid.NewGuid(), null, new int[24]), 0, null)["text"]!.GetValue<string>();
        var teams = FailureAlertPayload.Create(FailureAlertFormat.Teams, FailureAlertKind.NewGroup,
            new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Type, Named, "T", 1, now, now, Guid.NewGuid(), null, new int[24]), 0, null)["text"]!.GetValue<string>();

        Assert.That(Slack(JobLog.Failures.FailureGrouping.Type, Named),
            Does.StartWith("New failure group: urn:message:pay[.]evil[.]example Evil[.]Com café[.]example 10[.]0[.]0[.]7 Shop[.]Orders[.]Placed (1 open"));
        Assert.That(teams, Does.StartWith("New failure group: urn:message:pay\\[.\\]evil\\[.\\]example Evil\\[.\\]Com café\\[.\\]example"));
        Assert.That(Slack(JobLog.Failures.FailureGrouping.Queue, "orders.evil.example"), Does.StartWith("New failure group: orders[.]evil[.]example (1 open"));
        Assert.That(Slack(JobLog.Failures.FailureGrouping.Exception, "System.Net.Http.HttpRequestException at Shop.Orders.Handle"),
            Does.StartWith("New failure group: System.Net.Http.HttpRequestException at Shop.Orders.Handle (1 open"), "the application's type names");
    }

    [Test]
    public void SlackAndTeamsPayloads_DefangDottedNamesWhoseLabelEndsInACombiningMark()
    {
        // "café" written decomposed (e + U+0301, as macOS file names and some producers write it) is the same linked host
        // as the precomposed one; the mark draws (an accent), so it is not written as a code point.
        const string Key = "urn:message:pay.cafe\u0301.example";
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Type, Key, "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), null, new int[24]);

        var slack = FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup, group, 0, null)["text"]!.GetValue<string>();

        Assert.That(slack, Does.StartWith("New failure group: urn:message:pay[.]cafe\u0301[.]example (1 open"));
    }

    [Test]
    public void SlackAndTeamsPayloads_ShowControlAndBidiCharactersInTheKey_AsCodePoints()
    {
        // Grouped by queue (a RabbitMQ queue name is any UTF-8) or message type, a line feed in the key started a line of
        // the sender's in the operators' channel, and a bidi override reversed what followed ("fdp.exe" read "exe.pdf").
        const string Key = "orders\nResolved by ops, ignore \u202Efdp.exe\u0007\u200F";
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Queue, Key, "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), null, new int[24]);

        var slack = FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup, group, 0, null)["text"]!.GetValue<string>();
        var teams = FailureAlertPayload.Create(FailureAlertFormat.Teams, FailureAlertKind.NewGroup, group, 0, null)["text"]!.GetValue<string>();

        Assert.That(slack, Does.Contain("orders[U+000A]Resolved by ops, ignore [U+202E]fdp[.]exe[U+0007][U+200F] (1 open"));
        Assert.That(teams, Does.Contain("orders\\[U+000A\\]Resolved by ops, ignore \\[U+202E\\]fdp\\[.\\]exe\\[U+0007\\]\\[U+200F\\] (1 open"));
        Assert.That(slack + teams, Has.None.Matches<char>(c => char.IsControl(c) || c is '\u202e' or '\u200f'));
    }

    [Test]
    public void SlackAndTeamsPayloads_ShowCharactersThatDrawNothingInTheKey_AsCodePoints()
    {
        // "Shop.Charge\u200BCard" reads as the type "Shop.ChargeCard" in the channel, as on the dashboard.
        const string Key = "Shop.Charge\u200BCard\u2060 at tag\U000E0041 \U0001F468\u200D\U0001F469";
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Type, Key, "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), null, new int[24]);

        var slack = FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup, group, 0, null)["text"]!.GetValue<string>();

        Assert.That(slack, Does.StartWith("New failure group: Shop[.]Charge[U+200B]Card[U+2060] at tag[U+E0041] \U0001F468\u200D\U0001F469 (1 open"));
    }

    [Test]
    public void SlackPayload_KeyWithoutUrls_IsNotDefanged()
    {
        var group = new JobLog.Querying.FailureGroup("0123456789abcdef", JobLog.Failures.FailureGrouping.Exception, "System.InvalidOperationException at Shop.Orders.Handle", "T", 1, DateTime.UtcNow, DateTime.UtcNow, Guid.NewGuid(), null, new int[24]);

        var slack = FailureAlertPayload.Create(FailureAlertFormat.Slack, FailureAlertKind.NewGroup, group, 0, null)["text"]!.GetValue<string>();

        Assert.That(slack, Does.StartWith("New failure group: System.InvalidOperationException at Shop.Orders.Handle (1 open, last "));
    }

    private static Task<LedgerHost> StartAsync(Receiver receiver, Action<FailureAlertOptions> configure, Action<IServiceCollection>? services = null) =>
        LedgerHost.StartAsync(TestLedger.Sqlite(), services: s =>
        {
            s.AddJobLogFailureAlerts(o =>
            {
                o.Webhooks.Add(new FailureAlertWebhook { Url = receiver.Url, Format = FailureAlertFormat.Slack });
                o.Interval = TimeSpan.FromHours(1);
                o.FailuresPerMinute = null;
                configure(o);
            });
            services?.Invoke(s);
        });

    private static Task SeedAsync(LedgerHost host, string type, params DateTime[] times) => host.QueryAsync(db =>
    {
        foreach (var at in times)
        {
            var id = Guid.NewGuid();
            db.Add(new TaskLog
            {
                Id = id, Name = type, QueueName = type, DispatchedAt = at, Stop = at, State = TaskState.Failed,
                Runs = [new TaskRunLog { Id = Guid.NewGuid(), TaskId = id, Name = type, ConsumerType = "C", Start = at, Stop = at, State = TaskRunState.Failed, ErrorMessage = Error(type) }],
            });
        }

        return db.SaveChangesAsync();
    });

    /// <summary>A webhook on 127.0.0.1 that records what it is posted; it can hang or answer 503.</summary>
    private sealed class Receiver : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private Receiver(WebApplication app) => _app = app;

        public ConcurrentQueue<string> Bodies { get; } = new();

        public bool Hang { get; set; }

        public bool Down { get; set; }

        public Uri Url { get; private set; } = null!;

        public static async Task<Receiver> StartAsync(int port = 0)
        {
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
            builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
            builder.Logging.ClearProviders();
            var app = builder.Build();
            var receiver = new Receiver(app);
            app.MapPost("/hook", async (HttpContext http) =>
            {
                if (receiver.Hang)
                {
                    await Task.Delay(TimeSpan.FromSeconds(30), http.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                    return Results.StatusCode(504);
                }

                if (receiver.Down)
                {
                    return Results.StatusCode(503);
                }

                using var reader = new StreamReader(http.Request.Body);
                receiver.Bodies.Enqueue(await reader.ReadToEndAsync());
                return Results.Ok();
            });
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            receiver.Url = new Uri(address + "/hook");
            return receiver;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
