using System.Net.Http.Json;
using JobLog.Worker.Demo;
using MassTransit;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace JobLog.Worker.DemoHttp;

/// <summary>
/// The Worker's small demo HTTP surface, so that one run shows every log kind: an endpoint that publishes a task,
/// one that calls out through a logged HttpClient (to the Worker itself, on loopback), and a login endpoint.
/// </summary>
internal static class DemoHttpEndpoints
{
    /// <summary>The logged client the demo calls out with.</summary>
    public const string LoopbackClient = "joblog-demo-loopback";

    /// <summary>The demo login's accepted credentials.</summary>
    public const string DemoUser = "demo";

    public static IServiceCollection AddDemoHttp(this IServiceCollection services)
    {
        services.AddHttpClient(LoopbackClient, c => c.Timeout = TimeSpan.FromSeconds(10)).AddJobLogging(slug: "loopback");
        return services;
    }

    public static WebApplication MapDemoHttp(this WebApplication app)
    {
        var demo = app.MapGroup("/demo");
        demo.MapPost("/tasks", async (IPublishEndpoint publish, CancellationToken cancellationToken) =>
        {
            await publish.Publish(new ChargeCard(4242, 19.99m), cancellationToken);
            return Results.Accepted(value: new { published = nameof(ChargeCard) });
        }).WithName("demo-publish-task");

        demo.MapGet("/outbound", async (IHttpClientFactory clients, IServer server, CancellationToken cancellationToken) =>
        {
            var client = clients.CreateClient(LoopbackClient);
            var self = LoopbackAddress(server);
            var health = await client.GetStringAsync(new Uri(self, "/healthz"), cancellationToken);
            using var echo = await client.GetAsync(new Uri(self, "/demo/echo?token=demo-secret-token&page=1"), cancellationToken);
            return Results.Ok(new { health, echo = (int)echo.StatusCode });
        }).WithName("demo-call-out");

        demo.MapMethods("/echo", [HttpMethods.Get, HttpMethods.Head], (HttpRequest request) =>
            Results.Json(request.Query.ToDictionary(q => q.Key, q => q.Value.ToString()))).WithName("demo-echo");

        demo.MapPost("/login", (HttpContext context, DemoLogin login) =>
        {
            var ok = login.Username == DemoUser && login.Password == DemoUser;
            context.MarkJobLogLogin(ok);
            return ok ? Results.Ok(new { token = "demo-session-" + Guid.NewGuid().ToString("N")[..8] }) : Results.Unauthorized();
        }).WithJobLogSlug("login");
        return app;
    }

    /// <summary>Calls each demo endpoint once through the logged client (a failed and a successful login).</summary>
    /// <returns>The number of requests sent.</returns>
    public static async Task<int> ExerciseAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var client = services.GetRequiredService<IHttpClientFactory>().CreateClient(LoopbackClient);
        var self = LoopbackAddress(services.GetRequiredService<IServer>());
        using (await client.PostAsync(new Uri(self, "/demo/tasks"), null, cancellationToken))
        using (await client.GetAsync(new Uri(self, "/demo/outbound"), cancellationToken))
        using (await client.PostAsJsonAsync(new Uri(self, "/demo/login"), new DemoLogin(DemoUser, "wrong-password"), cancellationToken))
        using (await client.PostAsJsonAsync(new Uri(self, "/demo/login"), new DemoLogin(DemoUser, DemoUser), cancellationToken))
        {
            return 4;
        }
    }

    /// <summary>Where this server listens, as a loopback address (never an external host).</summary>
    private static Uri LoopbackAddress(IServer server)
    {
        var address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("The Worker is not listening on any address.");
        var uri = new Uri(address.Replace("://+", "://127.0.0.1", StringComparison.Ordinal).Replace("://*", "://127.0.0.1", StringComparison.Ordinal));
        return new UriBuilder(uri) { Host = uri.IsLoopback ? uri.Host : "127.0.0.1", Path = "/" }.Uri;
    }

    internal sealed record DemoLogin(string Username, string Password);
}
