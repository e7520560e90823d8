using System.Net;
using JobLog.Recording;
using JobLog.Testing;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace JobLog.Worker.Tests;

/// <summary>The real Worker (WorkerApp.Build: ledger, in-memory bus, demo consumers, dashboard) on a free loopback port.</summary>
internal sealed class WorkerHost : IAsyncDisposable
{
    /// <summary>Requests carrying this header appear to come from that address (to exercise the local-only rule).</summary>
    public const string RemoteIpHeader = "X-Test-Remote-Ip";

    private WorkerHost(WebApplication app, TestLedger ledger, string url)
    {
        App = app;
        Ledger = ledger;
        Url = url;
    }

    public WebApplication App { get; }

    public TestLedger Ledger { get; }

    /// <summary>For example <c>http://127.0.0.1:41234</c>.</summary>
    public string Url { get; }

    public IServiceProvider Services => App.Services;

    public static async Task<WorkerHost> StartAsync()
    {
        var ledger = TestLedger.Sqlite();
        var app = WorkerApp.Build(
            ["--urls=http://127.0.0.1:0", "--ConnectionStrings:JobLog=" + ledger.ConnectionString],
            b =>
            {
                b.Logging.SetMinimumLevel(LogLevel.Warning);
                b.Services.AddSingleton<IStartupFilter, RemoteIpFromHeader>();
            });
        await app.StartAsync();
        var url = app.Urls.Single(u => u.StartsWith("http://127.0.0.1:", StringComparison.Ordinal));
        return new WorkerHost(app, ledger, url);
    }

    public async Task SeedAsync(IEnumerable<object> rows)
    {
        await using var scope = Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        db.AddRange(rows);
        await db.SaveChangesAsync();
    }

    public async Task<T> QueryAsync<T>(Func<JobLogDbContext, Task<T>> query)
    {
        await using var scope = Services.CreateAsyncScope();
        return await query(scope.ServiceProvider.GetRequiredService<JobLogDbContext>());
    }

    /// <summary>Publishes through the Worker's bus and waits until the task's record reaches a final state.</summary>
    public async Task<TaskLog> PublishAndWaitAsync<T>(T message)
        where T : class
    {
        var id = NewId.NextGuid();
        await Services.GetRequiredService<IBus>().Publish(message, x => x.MessageId = id);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            await Services.GetRequiredService<LedgerRecorder>().FlushAsync(TimeSpan.FromSeconds(10));
            var task = await QueryAsync(db => db.TaskLogs.AsNoTracking().FirstOrDefaultAsync(t => t.Id == id));
            if (task is not null && task.State.IsFinal())
            {
                return task;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Task {id} did not finish (state {task?.State}).");
            }

            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        await Ledger.DisposeAsync();
    }

    private sealed class RemoteIpFromHeader : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((HttpContext context, Func<Task> nextMiddleware) =>
            {
                if (context.Request.Headers.TryGetValue(RemoteIpHeader, out var ip))
                {
                    context.Connection.RemoteIpAddress = IPAddress.Parse(ip.ToString());
                }

                return nextMiddleware();
            });
            next(app);
        };
    }
}
