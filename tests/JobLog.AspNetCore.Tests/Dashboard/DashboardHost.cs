using System.Net;
using JobLog.AspNetCore.Dashboard;
using JobLog.Testing;
using NUnit.Framework;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// An application on TestServer with JobLog and its dashboard at <c>/joblog</c>. Requests come from 127.0.0.1 unless
/// they carry <c>X-Test-Remote-Ip</c> (TestServer has no socket, so the test sets <c>Connection.RemoteIpAddress</c>).
/// </summary>
internal sealed class DashboardHost : IAsyncDisposable
{
    public const string RemoteIpHeader = "X-Test-Remote-Ip";

    private DashboardHost(WebApplication app, TestLedger ledger)
    {
        App = app;
        Ledger = ledger;
        Client = app.GetTestClient();
    }

    public WebApplication App { get; }

    public TestLedger Ledger { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => App.Services;

    public static async Task<DashboardHost> StartAsync(
        TestLedger ledger,
        Action<JobLogDashboardOptions>? dashboard = null,
        Action<WebApplicationBuilder>? services = null,
        Action<WebApplication, RouteGroupBuilder>? map = null,
        Action<WebApplication>? beforeMap = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders().AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddJobLog(o =>
        {
            ledger.Apply(o);
            o.Sweeper.Enabled = false;
        });
        services?.Invoke(builder);
        var app = builder.Build();
        app.Use((context, next) =>
        {
            context.Connection.RemoteIpAddress = context.Request.Headers.TryGetValue(RemoteIpHeader, out var ip)
                ? IPAddress.Parse(ip.ToString())
                : IPAddress.Loopback;
            return next(context);
        });
        beforeMap?.Invoke(app);
        var group = app.MapJobLogDashboard("/joblog", dashboard);
        map?.Invoke(app, group);
        await app.StartAsync();
        return new DashboardHost(app, ledger);
    }

    /// <summary>Writes rows straight into the ledger (the dashboard only reads).</summary>
    public async Task SeedAsync(params object[] rows)
    {
        await using var scope = Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        db.AddRange(rows);
        await db.SaveChangesAsync();
    }

    public async Task<string> GetStringAsync(string url, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await Client.GetAsync(url);
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(expected), () => $"GET {url}: {body}");
        return body;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        await Ledger.DisposeAsync();
    }
}

/// <summary>Ledger rows for the tests.</summary>
internal static class Rows
{
    public static TaskLog Task(
        string name, DateTime dispatchedAt, TaskState state = TaskState.Succeeded, string? input = null, string? queue = null, Guid? id = null)
    {
        var task = new TaskLog
        {
            Id = id ?? Guid.NewGuid(),
            Name = name,
            QueueName = queue ?? "queue:" + name.ToLowerInvariant(),
            Input = input ?? $"Value={name}",
            TaskArgs = "[]",
            TaskKwargs = "{\"Value\":\"" + name + "\"}",
            DispatchedAt = dispatchedAt,
            EstimatedTimeOfFirstArrival = dispatchedAt,
            State = state,
            Host = "test-host",
        };
        if (state != TaskState.Waiting)
        {
            task.Start = dispatchedAt.AddMilliseconds(20);
            task.Stop = state is TaskState.Active ? null : dispatchedAt.AddMilliseconds(420);
        }

        return task;
    }

    public static TaskRunLog Run(TaskLog task, int retries, TaskRunState state, double startSeconds, double? seconds, string? error = null, string? output = null) => new()
    {
        Id = Guid.NewGuid(),
        TaskId = task.Id,
        Name = task.Name,
        QueueName = task.QueueName,
        ConsumerType = "Tests." + task.Name + "Consumer",
        Input = task.Input,
        Start = task.DispatchedAt.AddSeconds(startSeconds),
        Stop = seconds is { } s ? task.DispatchedAt.AddSeconds(startSeconds + s) : null,
        State = state,
        ErrorMessage = error,
        Output = output,
        Retries = retries,
        Host = "test-host",
    };
}
