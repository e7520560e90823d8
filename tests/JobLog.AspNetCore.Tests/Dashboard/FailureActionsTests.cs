using System.Net;
using System.Security.Claims;
using System.Text.Encodings.Web;
using System.Text.Json;
using JobLog.AspNetCore.Dashboard;
using JobLog.Failures;
using JobLog.Testing;
using MassTransit;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// The Failures pages for readers, and the actions for operators: a second policy, POST only, antiforgery, through the
/// application's <see cref="IFailureActions"/>.
/// </summary>
public class FailureActionsTests
{
    private const string DeclinedError = "Shop.CardDeclinedException: Declined\n   at MassTransit.X.Y()\n   at Shop.Charge.Handle(ConsumeContext c)";
    private const string NoStockError = "System.InvalidOperationException: No stock\n   at Shop.Stock.Reserve()";
    private static readonly string[] s_actions = ["retry", "resolve", "archive"];

    [Test]
    public async Task Reader_SeesGroupsAndTheirFailures_OnThePagesAndInTheApi_WithoutActionForms()
    {
        await using var world = await World.StartAsync(new FakeFailureActions());

        var api = JsonDocument.Parse(await world.GetAsync("/joblog/api/failures", "reader")).RootElement;
        var groups = api.GetProperty("groups");
        var id = groups[0].GetProperty("id").GetString()!;
        var page = await world.GetAsync("/joblog/failures", "reader");
        var group = await world.GetAsync("/joblog/failures/groups/" + id, "reader");
        var rows = JsonDocument.Parse(await world.GetAsync($"/joblog/api/failures/groups/{id}", "reader")).RootElement.GetProperty("items");

        Assert.That(groups.GetArrayLength(), Is.EqualTo(2));
        Assert.That(groups[0].GetProperty("key").GetString(), Is.EqualTo("Shop.CardDeclinedException at Shop.Charge.Handle"));
        Assert.That(groups[0].GetProperty("count").GetInt32(), Is.EqualTo(3));
        Assert.That(page, Does.Contain(">Failures</a>").And.Contain("Shop.CardDeclinedException at Shop.Charge.Handle").And.Not.Contain("failure-actions"));
        Assert.That(group, Does.Contain("Declined").And.Not.Contain("failure-actions").And.Not.Contain("__RequestVerificationToken"));
        Assert.That(rows.EnumerateArray().Select(r => r.GetProperty("taskId").GetGuid()), Is.EquivalentTo(world.Declined));
        Assert.That(await world.StatusAsync(HttpMethod.Get, "/joblog/api/failures?by=colour", "reader"), Is.EqualTo(HttpStatusCode.BadRequest));
    }

    [Test]
    public async Task FailuresPage_AnswersItsListFragment_ForTheLiveRefresh()
    {
        await using var world = await World.StartAsync(new FakeFailureActions());
        using var request = new HttpRequestMessage(HttpMethod.Get, "/joblog/failures?by=type");
        request.Headers.Add(World.RoleHeader, "reader");
        request.Headers.Add("X-JobLog-Fragment", "list");

        using var response = await world.Host.Client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(body, Does.StartWith("<section class=\"card table-card\" data-fragment=\"list\" data-live=\"on\">"));
        Assert.That(body, Does.Contain(">Charge</a>").And.Not.Contain("<html"));
    }

    // A group's page and API read the group from the route. A blank id ("%20", a tab) was read as no group: the page was
    // titled with the largest group's key and listed every open failure, and its "Act on the whole group" form (group=" ")
    // acted on every open failure, up to MaxTasksPerAction: a link an attacker can hand an operator.
    [TestCase("%20")]
    [TestCase("%09")]
    [TestCase("%20%20%0A")]
    public async Task AGroupsPageWithABlankId_IsA400_NotEveryFailureUnderTheLargestGroupsTitle(string blank)
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);

        using var page = await world.SendAsync(HttpMethod.Get, "/joblog/failures/groups/" + blank, "operator");
        var html = await page.Content.ReadAsStringAsync();
        using var api = await world.SendAsync(HttpMethod.Get, "/joblog/api/failures/groups/" + blank, "reader");
        var problem = await api.Content.ReadAsStringAsync();

        Assert.Multiple(() =>
        {
            Assert.That((page.StatusCode, api.StatusCode), Is.EqualTo((HttpStatusCode.BadRequest, HttpStatusCode.BadRequest)));
            Assert.That(html, Does.Not.Contain("Shop.CardDeclinedException at Shop.Charge.Handle").And.Not.Contain("Act on the whole group"));
            Assert.That(problem, Does.Contain("group id of 16 lower-case hex digits"));
        });
    }

    [Test]
    public async Task Reader_WithoutTheOperatorPolicy_Gets403OnEveryAction()
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);

        Assert.That(await world.StatusAsync(HttpMethod.Get, "/joblog/api/failures/token", "reader"), Is.EqualTo(HttpStatusCode.Forbidden));
        foreach (var action in s_actions)
        {
            foreach (var form in new[] { world.TasksForm(world.Declined[0]), world.FilterForm() })
            {
                Assert.That(await world.StatusAsync(HttpMethod.Post, "/joblog/failures/actions/" + action, "reader", form), Is.EqualTo(HttpStatusCode.Forbidden), action);
            }
        }

        Assert.That(fake.Requests, Is.Empty);
    }

    [Test]
    public async Task Operator_PostWithoutTheAntiforgeryToken_IsRefused()
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);
        var (cookie, _, _) = await world.TokenAsync();

        Assert.That(await world.StatusAsync(HttpMethod.Post, "/joblog/failures/actions/retry", "operator", world.TasksForm(world.Declined[0])), Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await world.StatusAsync(HttpMethod.Post, "/joblog/failures/actions/resolve", "operator", world.TasksForm(world.Declined[0]), cookie), Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(fake.Requests, Is.Empty);
    }

    [Test]
    public async Task Operator_RetriesAWholeGroup_FromItsPage_AndFollowsTheProgressToTheEnd()
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);
        var groupId = new FailureGroupKey(FailureGrouping.Exception, "Shop.CardDeclinedException at Shop.Charge.Handle").Id;
        var page = await world.GetAsync("/joblog/failures/groups/" + groupId, "operator");
        var (cookie, field, token) = await world.TokenAsync();
        var form = world.FilterForm(("group", groupId), ("note", "card processor fixed"), (field, token));

        using var response = await world.SendAsync(HttpMethod.Post, "/joblog/failures/actions/retry", "operator", form, cookie);

        Assert.That(page, Does.Contain("failure-actions").And.Contain("Retry group").And.Contain("name=\"__RequestVerificationToken\""));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Redirect));
        var location = response.Headers.Location!.ToString();
        Assert.That(location, Does.StartWith("/joblog/failures/retries/"));
        var (action, request) = fake.Requests.Single();
        Assert.That(action, Is.EqualTo("retry"));
        Assert.That(request.TaskIds, Is.EquivalentTo(world.Declined));
        Assert.That((request.RequestedBy, request.Note), Is.EqualTo(("operator-user", "card processor fixed")));
        Assert.That(request.Selection, Does.Contain("group=" + groupId));

        var progressPage = await world.GetAsync(location, "reader");
        Assert.That(progressPage, Does.Contain("id=\"retry-progress\"").And.Contain("data-progress-url="));
        var done = false;
        for (var poll = 0; poll < 10 && !done; poll++)
        {
            var progress = JsonDocument.Parse(await world.GetAsync(location.Replace("/joblog/", "/joblog/api/", StringComparison.Ordinal), "reader")).RootElement;
            done = progress.GetProperty("completed").GetBoolean();
        }

        Assert.That(done, "the fake completes one task per poll");
    }

    [Test]
    public async Task Operator_ResolvesASelection_AsAJsonClientWithTheTokenHeader()
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);

        using var response = await world.PostWithTokenHeaderAsync("archive", new FormUrlEncodedContent(world.TasksForm(world.Declined[0], world.Declined[1])));
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(body.GetProperty("accepted").GetInt32(), Is.EqualTo(2));
        var (action, sent) = fake.Requests.Single();
        Assert.That((action, sent.Selection), Is.EqualTo(("archived", "2 selected failures")));
        Assert.That(sent.TaskIds, Is.EqualTo(world.Declined.Take(2)));
    }

    [TestCase("application/json", "{\"scope\":\"tasks\"}")]
    [TestCase("text/plain", "scope=tasks")]
    [TestCase(null, null)]
    public async Task Operator_PostWithTheTokenHeader_ButNoForm_IsA400_NotA500(string? contentType, string? body)
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);

        using var response = await world.PostWithTokenHeaderAsync("resolve", contentType is null ? null : new StringContent(body!, System.Text.Encoding.UTF8, contentType));
        var text = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), text);
        Assert.That(JsonDocument.Parse(text).RootElement.GetProperty("error").GetString(), Does.Contain("form"));
        Assert.That(fake.Requests, Is.Empty);
    }

    /// <summary>Forms an operator's client could send that the action cannot take: each a 4xx that says why (400 unless named).</summary>
    private static IEnumerable<TestCaseData> HostileForms()
    {
        const string Form = "application/x-www-form-urlencoded";
        TestCaseData Case(string name, string mediaType, string body, string action = "resolve", HttpStatusCode status = HttpStatusCode.BadRequest) =>
            new TestCaseData(mediaType, body, action, status).SetArgDisplayNames(name);

        yield return Case("invalid percent-escapes", Form, "scope=tasks&task=%ZZ%G0%");
        yield return Case("markup as a task id", Form, "scope=tasks&task=" + Uri.EscapeDataString("<script>alert(1)</script>"));
        yield return Case("a blank task id", Form, "scope=tasks&task=");
        yield return Case("an unknown scope", Form, "scope=%00&task=" + Guid.NewGuid());
        yield return Case("a filter it cannot read", Form, "scope=filter&since=-1h");
        yield return Case("a group that is not one", Form, "scope=filter&group=..%2F..%2Fetc");
        yield return Case("a note past its bound", Form, "scope=tasks&note=" + new string('n', 5_000) + "&task=" + Guid.NewGuid());
        yield return Case("an unknown charset", Form + "; charset=x-joblog-42", "scope=tasks&task=zzz");
        yield return Case("a key past the server's bound", Form, new string('k', 3_000) + "=1&scope=tasks");
        yield return Case("a value past the server's bound", Form, "scope=tasks&task=" + new string('v', 5 * 1024 * 1024));
        yield return Case("JSON sent as a form", Form, "{\"scope\":\"tasks\",\"task\":[\"" + Guid.NewGuid() + "\"]}");
        yield return Case("multipart without a boundary", "multipart/form-data", "scope=tasks");
        yield return Case("multipart with a boundary past 70 characters", "multipart/form-data; boundary=" + new string('b', 100), "--x");
        yield return Case("multipart cut before its end", "multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"scope\"\r\n\r\ntasks");
        yield return Case("multipart with a section without headers", "multipart/form-data; boundary=xyz", "--xyz\r\n\r\ntasks\r\n--xyz--\r\n");
        yield return Case("an action in another case", Form, "scope=tasks&task=" + Guid.NewGuid(), "RETRY", HttpStatusCode.NotFound);
        yield return Case("an action that climbs out", Form, "scope=tasks&task=" + Guid.NewGuid(), "..%2F..%2Fretry", HttpStatusCode.NotFound);
    }

    [TestCaseSource(nameof(HostileForms))]
    public async Task Operator_PostingAFormTheActionCannotTake_GetsA4xxThatSaysWhy_AndNothingIsActedOn(string mediaType, string body, string action, HttpStatusCode expected)
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);
        var content = new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", mediaType);

        using var response = await world.PostWithTokenHeaderAsync(action, content);
        var text = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(expected), text);
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"), text);
        Assert.That(JsonDocument.Parse(text).RootElement.GetProperty("detail").GetString(), Has.Length.GreaterThan(10).And.Not.Contain("   at "), text);
        Assert.That(fake.Requests, Is.Empty);
    }

    [TestCase(1_100, HttpStatusCode.OK)]
    [TestCase(10_100, HttpStatusCode.BadRequest)]
    public async Task Operator_FormOfMoreTasksThanTheServersDefaultValueLimit_IsReadUpToMaxTasksPerAction_ThenA400_NotA500(int tasks, HttpStatusCode expected)
    {
        // The server's FormOptions.ValueCountLimit (1,024) is below MaxTasksPerAction (10,000): the action reads its form
        // with a limit of its own, so 1,100 selected tasks are one action; a form beyond it is the client's error.
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);

        using var response = await world.PostWithTokenHeaderAsync(
            "resolve", new FormUrlEncodedContent(world.TasksForm([.. Enumerable.Range(0, tasks).Select(_ => Guid.NewGuid())])));

        Assert.That(response.StatusCode, Is.EqualTo(expected), await response.Content.ReadAsStringAsync());
        Assert.That(fake.Requests.Select(r => r.Request.TaskIds.Count), Is.EqualTo(expected == HttpStatusCode.OK ? new[] { tasks } : Array.Empty<int>()));
    }

    [Test]
    public async Task Operator_SeesButtonsOnAFailedTasksPage_AndAReaderDoesNot()
    {
        await using var world = await World.StartAsync(new FakeFailureActions());

        var asOperator = await world.GetAsync("/joblog/tasks/" + world.Declined[0], "operator");
        var asReader = await world.GetAsync("/joblog/tasks/" + world.Declined[0], "reader");

        Assert.That(asOperator, Does.Contain("Retry this failure").And.Contain("Resolve this failure").And.Contain("Archive this failure"));
        Assert.That(asReader, Does.Not.Contain("this failure"));
    }

    [Test]
    public async Task WithoutIFailureActions_ThePageSaysSo_AndAnActionIs503()
    {
        await using var world = await World.StartAsync(null);
        var (cookie, field, token) = await world.TokenAsync();

        var page = await world.GetAsync("/joblog/failures", "operator");
        var status = await world.StatusAsync(HttpMethod.Post, "/joblog/failures/actions/retry", "operator", world.FilterForm((field, token)), cookie);

        Assert.That(page, Does.Contain("actions-unavailable"));
        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
    }

    /// <summary>
    /// End to end, no fake: a consumer fails until its gate opens; an operator retries the whole group through the
    /// endpoint (antiforgery token, operator policy); the ledger's IFailureActions sends each kept message back once.
    /// </summary>
    [Test]
    public async Task Operator_RetriesAGroupThroughTheEndpoint_EachFailedMessageRunsOnceMore_OnTheSameTask()
    {
        var gate = new FlakyGate();
        await using var world = await World.StartAsync(null, bus: services =>
        {
            services.AddSingleton(gate);
            services.Configure<JobLogOptions>(o =>
            {
                o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(100);
                o.Failures.RetriesPerSecond = 1000;
            });
            services.AddMassTransit(x =>
            {
                x.AddConsumer<FlakyConsumer>();
                x.UsingInMemory((context, cfg) =>
                {
                    cfg.UseTaskLogging(context);
                    cfg.ConfigureEndpoints(context);
                });
            });
        });
        var bus = world.Host.Services.GetRequiredService<IBus>();
        var ids = new List<Guid>();
        for (var i = 0; i < 10; i++)
        {
            var id = NewId.NextGuid();
            ids.Add(id);
            await bus.Publish(new FlakyMessage(i), c => c.MessageId = id);
        }

        await EventuallyAsync(world, db => db.KeptMessages.CountAsync(k => ids.Contains(k.TaskId)), 10, "10 failed messages kept");
        // The kept messages are stored at once; their tasks' FAILED state comes with a later batch of the writer. A task
        // written at its dispatch (WAITING) but not yet failed is not the group's to retry, so wait for all ten to fail.
        await EventuallyAsync(
            world, db => db.TaskLogs.CountAsync(t => ids.Contains(t.Id) && t.State == TaskState.Failed), 10, "the 10 tasks failed");
        string name;
        await using (var names = world.Host.Services.CreateAsyncScope())
        {
            name = await names.ServiceProvider.GetRequiredService<JobLogDbContext>()
                .TaskLogs.Where(t => ids.Contains(t.Id)).Select(t => t.Name).Distinct().SingleAsync();
        }

        gate.Open = true;

        var (cookie, field, token) = await world.TokenAsync();
        using var response = await world.SendAsync(
            HttpMethod.Post, "/joblog/failures/actions/retry", "operator", world.FilterForm(("name", name), (field, token)), cookie);
        Assert.That((int)response.StatusCode, Is.InRange(200, 399), await response.Content.ReadAsStringAsync());

        await EventuallyAsync(world, db => db.TaskLogs.CountAsync(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded), 10, "10 tasks succeeded");
        await using var scope = world.Host.Services.CreateAsyncScope();
        var runs = await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().TaskRunLogs.AsNoTracking()
            .Where(r => ids.Contains(r.TaskId)).ToListAsync();
        foreach (var id in ids)
        {
            var mine = runs.Where(r => r.TaskId == id).OrderBy(r => r.Start).Select(r => (r.State, r.Retries)).ToList();
            Assert.That(mine, Has.Count.EqualTo(2), $"task {id}: the failed run and one retried run");
            Assert.That(mine[1], Is.EqualTo((TaskRunState.Succeeded, mine[0].Retries + 1)), $"task {id}");
            Assert.That(gate.Succeeded.GetValueOrDefault(id), Is.EqualTo(1), "consumed once after the retry");
        }

        var actions = await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().FailureActions.AsNoTracking().ToListAsync();
        Assert.That(actions.Select(a => a.RequestedBy), Is.EqualTo(new[] { "operator-user" }), "the action names who asked");
        var taskPage = await world.GetAsync("/joblog/tasks/" + ids[0], "reader");
        Assert.That(taskPage, Does.Contain("Actions on this failure").And.Contain("operator-user").And.Contain("Retry"), "the task's page shows the action");
    }

    /// <summary>Polls the count until it is <paramref name="expected"/>, for 120 s (300 polls were ~30 s: short at load 50).</summary>
    private static async Task EventuallyAsync(World world, Func<JobLogDbContext, Task<int>> count, int expected, string what)
    {
        var last = -1;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (last != expected && clock.Elapsed < LedgerHost.MinimumWait)
        {
            await using var scope = world.Host.Services.CreateAsyncScope();
            last = await count(scope.ServiceProvider.GetRequiredService<JobLogDbContext>());
            if (last != expected)
            {
                await Task.Delay(100);
            }
        }

        Assert.That(last, Is.EqualTo(expected), what);
    }

    public sealed record FlakyMessage(int N);

    public sealed class FlakyGate
    {
        public volatile bool Open;

        public System.Collections.Concurrent.ConcurrentDictionary<Guid, int> Succeeded { get; } = new();
    }

    public sealed class FlakyConsumer(FlakyGate gate) : IConsumer<FlakyMessage>
    {
        public Task Consume(ConsumeContext<FlakyMessage> context)
        {
            if (!gate.Open)
            {
                throw new InvalidOperationException("The gate is closed for " + context.Message.N);
            }

            gate.Succeeded.AddOrUpdate(context.MessageId!.Value, 1, (_, n) => n + 1);
            return Task.CompletedTask;
        }
    }

    /// <summary>
    /// A retry's progress and the actions read (and write) the ledger as every other dashboard request does: they take a
    /// slot of <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/> too, so any number of them at once cannot take
    /// more connections than the other reads may.
    /// </summary>
    [Test]
    public async Task WhileEveryReadSlotIsTaken_ARetrysProgressAndAnAction_Are429_AndTheActionIsNotRun()
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake);
        var (cookie, field, token) = await world.TokenAsync();
        var slots = new List<IDisposable>();
        while (world.Options.Reads.TryEnter() is { } slot)
        {
            slots.Add(slot);
        }

        try
        {
            Assert.That(slots, Has.Count.EqualTo(world.Options.MaxConcurrentQueries));
            foreach (var url in new[] { "/joblog/failures/retries/" + Guid.NewGuid(), "/joblog/api/failures/retries/" + Guid.NewGuid() })
            {
                using var progress = await world.SendAsync(HttpMethod.Get, url, "operator");
                Assert.That(progress.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests), url);
                Assert.That(progress.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)), url);
            }

            using var act = await world.SendAsync(
                HttpMethod.Post, "/joblog/failures/actions/retry", "operator", [.. world.TasksForm(world.Declined[0]), new(field, token)], cookie);
            Assert.That(act.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests), await act.Content.ReadAsStringAsync());
            Assert.That(fake.Requests, Is.Empty, "a refused action is not run");
        }
        finally
        {
            slots.ForEach(s => s.Dispose());
        }

        using var done = await world.SendAsync(
            HttpMethod.Post, "/joblog/failures/actions/retry", "operator", [.. world.TasksForm(world.Declined[0]), new(field, token)], cookie);
        Assert.That(done.StatusCode, Is.EqualTo(HttpStatusCode.Redirect), "with a slot free the action runs");
        Assert.That(fake.Requests.Single().Action, Is.EqualTo("retry"));
    }

    [Test]
    public async Task WithActionsOff_EvenAnOperatorGets403()
    {
        var fake = new FakeFailureActions();
        await using var world = await World.StartAsync(fake, enableActions: false);

        Assert.That(await world.StatusAsync(HttpMethod.Post, "/joblog/failures/actions/retry", "operator", world.TasksForm(world.Declined[0])), Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(await world.GetAsync("/joblog/failures", "operator"), Does.Not.Contain("failure-actions"));
        Assert.That(fake.Requests, Is.Empty);
    }

    /// <summary>
    /// Hostile and careless posts to the ledger's own actions (no bus needed: a retry is recorded, its sender is the
    /// MassTransit integration's): a GET of an action changes nothing (405), a second retry of a task whose retry is
    /// pending takes nothing, and a retry or resolve of a task that is not in the ledger (never was, or purged) takes
    /// nothing: each a 409 that says so, with exactly one retry queued for the task in the end.
    /// </summary>
    [Test]
    public async Task Operator_DoubleSubmitAndUnknownOrPurgedTasks_AreA409_AndQueueNothingMore()
    {
        await using var world = await World.StartAsync(null, bus: _ => { });
        var failed = world.Declined[0];
        await world.Host.SeedAsync(new KeptMessageLog
        {
            Id = Guid.NewGuid(), TaskId = failed, ConsumerType = "Charge", InputAddress = "loopback://localhost/charge", KeptAt = DateTime.UtcNow, BodyLength = 2,
        });
        var purged = world.Declined[1];
        await QueryAsync(world, db => db.TaskLogs.Where(t => t.Id == purged).ExecuteDeleteAsync());
        var (cookie, field, token) = await world.TokenAsync();
        List<KeyValuePair<string, string>> Form(Guid id) => [.. world.TasksForm(id), new(field, token)];

        Assert.That(await world.StatusAsync(HttpMethod.Get, "/joblog/failures/actions/retry?scope=tasks&task=" + failed, "operator"),
            Is.EqualTo(HttpStatusCode.MethodNotAllowed), "a GET never acts");
        Assert.That(await QueryAsync(world, db => db.FailureActions.CountAsync()), Is.Zero, "the GET recorded nothing");

        using (var first = await world.SendAsync(HttpMethod.Post, "/joblog/failures/actions/retry", "operator", Form(failed), cookie))
        {
            Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.Redirect), "the first retry is taken");
        }

        foreach (var (action, id, because) in new[]
        {
            ("retry", failed, "the same retry, submitted twice"),
            ("retry", NewId.NextGuid(), "a task that never was"),
            ("retry", purged, "a purged task"),
            ("resolve", NewId.NextGuid(), "a task that never was"),
            ("resolve", purged, "a purged task"),
        })
        {
            using var response = await world.SendAsync(HttpMethod.Post, "/joblog/failures/actions/" + action, "operator", Form(id), cookie);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), $"{action}, {because}: {body}");
            Assert.That(body, Does.Contain("skipped"), $"{action}, {because}: says why");
        }

        var pending = await QueryAsync(world, db => db.FailureActionItems.CountAsync(i => i.State == FailureActionItemState.Pending));
        Assert.That(pending, Is.EqualTo(1), "one retry queued, for the one failed task");
        Assert.That(await QueryAsync(world, db => db.TaskLogs.CountAsync(t => t.Resolution != null)), Is.Zero, "nothing resolved");
    }

    private static async Task<T> QueryAsync<T>(World world, Func<JobLogDbContext, Task<T>> query)
    {
        await using var scope = world.Host.Services.CreateAsyncScope();
        return await query(scope.ServiceProvider.GetRequiredService<JobLogDbContext>());
    }

    [Test]
    public void ActionsOptions_OutOfRange_AreRefused()
    {
        Assert.Throws<ArgumentException>(() => new JobLogDashboardOptions().Actions.RequireAuthorization(" "));
        var options = new JobLogDashboardOptions();
        options.Actions.MaxTasksPerAction = 0;
        Assert.That(new JobLogDashboardOptionsValidator().Validate(null, options).Failed);
    }

    /// <summary>Readers pass "readers"; operators also pass "joblog-operator". Three Declined failures, one NoStock.</summary>
    private sealed class World : IAsyncDisposable
    {
        public const string RoleHeader = "X-Test-Role";

        private World(DashboardHost host, List<Guid> declined)
        {
            Host = host;
            Declined = declined;
        }

        public DashboardHost Host { get; }

        public JobLogDashboardOptions Options { get; private init; } = null!;

        public List<Guid> Declined { get; }

        public static async Task<World> StartAsync(FakeFailureActions? actions, bool enableActions = true, Action<IServiceCollection>? bus = null)
        {
            JobLogDashboardOptions options = null!;
            var host = await DashboardHost.StartAsync(
                TestLedger.Sqlite(),
                o =>
                {
                    options = o;
                    if (enableActions)
                    {
                        o.Actions.RequireAuthorization("joblog-operator");
                    }
                },
                services: b =>
                {
                    b.Services.AddAuthentication(RoleAuthentication.SchemeName)
                        .AddScheme<AuthenticationSchemeOptions, RoleAuthentication>(RoleAuthentication.SchemeName, null);
                    b.Services.AddAuthorization(o =>
                    {
                        o.AddPolicy("readers", p => p.RequireAuthenticatedUser());
                        o.AddPolicy("joblog-operator", p => p.RequireRole("operator"));
                    });
                    b.Services.AddAntiforgery();
                    // AddJobLog registers the ledger's own; a test either replaces it by a fake or takes it away.
                    if (bus is not null)
                    {
                        // A real bus: the ledger's own IFailureActions stays.
                        bus(b.Services);
                        return;
                    }

                    b.Services.RemoveAll<IFailureActions>();
                    if (actions is not null)
                    {
                        b.Services.AddSingleton<IFailureActions>(actions);
                    }
                },
                beforeMap: app =>
                {
                    app.UseAuthentication();
                    app.UseAuthorization();
                },
                map: (_, group) => group.RequireAuthorization("readers"));
            var now = DateTime.UtcNow;
            var declined = new List<Guid>();
            var rows = new List<object>();
            for (var i = 0; i < 4; i++)
            {
                var task = Rows.Task(i < 3 ? "Charge" : "Reserve", now.AddMinutes(-10 + i), TaskState.Failed);
                rows.Add(task);
                rows.Add(Rows.Run(task, 0, TaskRunState.Failed, 0.1, 0.2, i < 3 ? DeclinedError : NoStockError));
                if (i < 3)
                {
                    declined.Insert(0, task.Id);
                }
            }

            await host.SeedAsync([.. rows]);
            return new World(host, declined) { Options = options };
        }

        public List<KeyValuePair<string, string>> TasksForm(params Guid[] ids) =>
            [new("scope", "tasks"), .. ids.Select(id => new KeyValuePair<string, string>("task", id.ToString()))];

        public List<KeyValuePair<string, string>> FilterForm(params (string Name, string Value)[] values) =>
            [new("scope", "filter"), .. values.Select(v => new KeyValuePair<string, string>(v.Name, v.Value))];

        /// <summary>The operator's antiforgery cookie (as a Cookie header), form field name and request token.</summary>
        public async Task<(string Cookie, string Field, string Token)> TokenAsync()
        {
            using var response = await SendAsync(HttpMethod.Get, "/joblog/api/failures/token", "operator");
            var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            var cookie = string.Join("; ", response.Headers.GetValues("Set-Cookie").Select(c => c.Split(';')[0]));
            return (cookie, json.GetProperty("field").GetString()!, json.GetProperty("token").GetString()!);
        }

        /// <summary>An operator's POST of <paramref name="content"/> to an action as an API client sends it: the token in its header, JSON wanted.</summary>
        public async Task<HttpResponseMessage> PostWithTokenHeaderAsync(string action, HttpContent? content)
        {
            var (cookie, _, token) = await TokenAsync();
            var tokenHeader = JsonDocument.Parse(await GetAsync("/joblog/api/failures/token", "operator")).RootElement.GetProperty("header").GetString()!;
            using var request = new HttpRequestMessage(HttpMethod.Post, "/joblog/failures/actions/" + action) { Content = content };
            request.Headers.Add(RoleHeader, "operator");
            request.Headers.Add("Cookie", cookie);
            request.Headers.Add(tokenHeader, token);
            request.Headers.Add("Accept", "application/json");
            return await Host.Client.SendAsync(request);
        }

        public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, string role, List<KeyValuePair<string, string>>? form = null, string? cookie = null)
        {
            using var request = new HttpRequestMessage(method, url);
            request.Headers.Add(RoleHeader, role);
            if (cookie is not null)
            {
                request.Headers.Add("Cookie", cookie);
            }

            if (form is not null)
            {
                request.Content = new FormUrlEncodedContent(form);
            }

            return await Host.Client.SendAsync(request);
        }

        public async Task<HttpStatusCode> StatusAsync(HttpMethod method, string url, string role, List<KeyValuePair<string, string>>? form = null, string? cookie = null)
        {
            using var response = await SendAsync(method, url, role, form, cookie);
            return response.StatusCode;
        }

        public async Task<string> GetAsync(string url, string role)
        {
            using var response = await SendAsync(HttpMethod.Get, url, role);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), () => $"GET {url}: {body}");
            return body;
        }

        public ValueTask DisposeAsync() => Host.DisposeAsync();
    }

    /// <summary>Authenticates whoever sends <c>X-Test-Role</c> as "&lt;role&gt;-user" in that role.</summary>
    private sealed class RoleAuthentication(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        public const string SchemeName = "TestRole";

        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            if (!Request.Headers.TryGetValue(World.RoleHeader, out var role))
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, role + "-user"), new Claim(ClaimTypes.Role, role.ToString())], SchemeName);
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
        }
    }
}
