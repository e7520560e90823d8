using JobLog.Recording;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.AspNetCore.Tests.Requests;

/// <summary>How a test application is served.</summary>
public enum Server
{
    /// <summary>ASP.NET Core's in-memory TestServer.</summary>
    TestServer,

    /// <summary>Kestrel on 127.0.0.1 with a random port.</summary>
    Kestrel,
}

/// <summary>A web application with JobLog on a throwaway SQLite ledger, served by TestServer or Kestrel.</summary>
public sealed class WebFixture : IAsyncDisposable
{
    private WebFixture(WebApplication app, TestLedger ledger, HttpClient client)
    {
        App = app;
        Ledger = ledger;
        Client = client;
    }

    public WebApplication App { get; }

    public TestLedger Ledger { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => App.Services;

    /// <summary>Builds and starts an application: <paramref name="services"/> adds services, <paramref name="pipeline"/> builds the pipeline.</summary>
    public static async Task<WebFixture> StartAsync(
        Action<WebApplication> pipeline,
        Action<IServiceCollection>? services = null,
        Server server = Server.TestServer,
        Action<JobLogOptions>? options = null,
        TestLedger? ledger = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.Logging.ClearProviders().AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        if (server == Server.Kestrel)
        {
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.WebHost.ConfigureKestrel(k =>
            {
                // The bounds tests send a 64 KB header and a 10,000-character path: the server must accept them.
                k.Limits.MaxRequestHeadersTotalSize = 256 * 1024;
                k.Limits.MaxRequestLineSize = 64 * 1024;
            });
        }
        else
        {
            builder.WebHost.UseTestServer();
        }

        ledger ??= TestLedger.Sqlite();
        builder.Services.AddJobLog(o =>
        {
            ledger.Apply(o);
            o.Sweeper.Enabled = false;
            options?.Invoke(o);
        });
        services?.Invoke(builder.Services);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        var app = builder.Build();
        pipeline(app);
        await app.StartAsync();
        var client = server == Server.Kestrel
            ? new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromMinutes(2) }
            : app.GetTestClient();
        return new WebFixture(app, ledger, client);
    }

    /// <summary>Waits until every record enqueued so far is committed.</summary>
    public async Task FlushAsync()
    {
        var recorder = Services.GetRequiredService<LedgerRecorder>();
        if (!await recorder.FlushAsync(TimeSpan.FromSeconds(120)))
        {
            throw new TimeoutException($"The ledger did not commit within 120 s (backlog {recorder.Backlog}).");
        }
    }

    public async Task<T> QueryAsync<T>(Func<JobLogDbContext, Task<T>> query)
    {
        await using var scope = Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        return await query(db);
    }

    /// <summary>The completed record of the one request to <paramref name="pathPrefix"/> (polls: the record of a request is completed after its response).</summary>
    public async Task<InputRequestLog> CompletedInputAsync(string pathPrefix)
    {
        InputRequestLog? found = null;
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                await FlushAsync();
                var rows = await QueryAsync(db => db.InputRequestLogs.AsNoTracking().Where(r => r.Path.StartsWith(pathPrefix)).ToListAsync());
                found = rows.Count == 1 && rows[0].Status != RequestLogStatus.Incomplete ? rows[0] : null;
                return found is not null;
            },
            because: "one completed input request log for " + pathPrefix);
        return found!;
    }

    public Task<List<InputRequestLog>> InputsAsync() =>
        QueryAsync(db => db.InputRequestLogs.AsNoTracking().ToListAsync());

    public Task<List<OutputRequestLog>> OutputsAsync() =>
        QueryAsync(db => db.OutputRequestLogs.AsNoTracking().Include(o => o.RelatedObjects).ToListAsync());

    public async ValueTask DisposeAsync()
    {
        try
        {
            Client.Dispose();
            await App.StopAsync();
        }
        finally
        {
            await App.DisposeAsync();
            await Ledger.DisposeAsync();
        }
    }
}
