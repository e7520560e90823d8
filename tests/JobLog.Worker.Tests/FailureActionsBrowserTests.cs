using System.Security.Claims;
using JobLog.Testing;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>An operator retries a failure group from the dashboard in headless Chromium and watches the progress end.</summary>
[TestFixture]
[Category("Browser")]
public class FailureActionsBrowserTests
{
    private const string Declined = "Shop.CardDeclinedException: Declined\n   at MassTransit.X.Y()\n   at Shop.Charge.Handle(ConsumeContext c)";

    [Test]
    public async Task Operator_OpensAGroup_ClicksRetry_AndTheProgressReachesDone()
    {
        await using var chromium = await Chromium.LaunchAsync();
        var fake = new FakeFailureActions { PollsPerTask = 1 };
        await using var ledger = TestLedger.Sqlite();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders().AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddJobLog(o =>
        {
            ledger.Apply(o);
            o.Sweeper.Enabled = false;
        });
        builder.Services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme).AddCookie();
        builder.Services.AddAuthorization(o =>
        {
            o.AddPolicy("readers", p => p.RequireAuthenticatedUser());
            o.AddPolicy("joblog-operator", p => p.RequireRole("operator"));
        });
        builder.Services.AddAntiforgery();
        builder.Services.AddSingleton<JobLog.Failures.IFailureActions>(fake);
        await using var app = builder.Build();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapGet("/login", async (HttpContext http) =>
        {
            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "olga"), new Claim(ClaimTypes.Role, "operator")], CookieAuthenticationDefaults.AuthenticationScheme);
            await http.SignInAsync(new ClaimsPrincipal(identity));
            return Results.Redirect("/joblog/failures");
        });
        app.MapJobLogDashboard("/joblog", o => o.Actions.RequireAuthorization("joblog-operator")).RequireAuthorization("readers");
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
            var now = DateTime.UtcNow;
            for (var i = 0; i < 3; i++)
            {
                var id = Guid.NewGuid();
                db.Add(new TaskLog
                {
                    Id = id, Name = "Charge", QueueName = "charge", DispatchedAt = now.AddMinutes(-i), Stop = now.AddMinutes(-i), State = TaskState.Failed,
                    Runs = [new TaskRunLog { Id = Guid.NewGuid(), TaskId = id, Name = "Charge", ConsumerType = "C", QueueName = "charge", Start = now.AddMinutes(-i), State = TaskRunState.Failed, ErrorMessage = Declined }],
                });
            }

            await db.SaveChangesAsync();
        }

        await using var context = await chromium.Browser.NewContextAsync(new() { BaseURL = url });
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, error) => errors.Add(error);
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                errors.Add(message.Text);
            }
        };

        await page.GotoAsync("/login");
        await page.ClickAsync("#failure-groups a");
        await page.ClickAsync("button:has-text('Retry group')");
        await page.WaitForURLAsync("**/joblog/failures/retries/**");
        await page.WaitForSelectorAsync("#retry-progress[data-done='true']", new() { Timeout = 15_000 });

        Assert.That(await page.InnerTextAsync("#retry-status"), Is.EqualTo("3 of 3 sent, 0 skipped, 0 failed · done"));
        Assert.That(await page.GetAttributeAsync("#retry-progress", "value"), Is.EqualTo("3"));
        var (action, request) = fake.Requests.Single();
        Assert.That((action, request.RequestedBy, request.TaskIds.Count), Is.EqualTo(("retry", "olga", 3)));
        Assert.That(errors, Is.Empty, "no script error, no CSP violation");
        await app.StopAsync();
    }
}
