using System.Net;
using System.Net.Http.Headers;
using JobLog.AspNetCore.Tests.Requests;
using JobLog.Testing.Hostile;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Hostile;

/// <summary>The hostile-input corpus through the inbound-request path: a login endpoint that reads the body and refuses.</summary>
public class HostileInboundTests
{
    private static IEnumerable<HostileCase> Cases() => HostileCase.All();

    [TestCaseSource(nameof(Cases))]
    public async Task Login_WithAHostileBody_IsRecordedWithItsOutcomeAndNoSecretReachesTheLedgerFile(HostileCase hostile)
    {
        var ledger = JobLog.Testing.TestLedger.Sqlite();
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/login", async (HttpContext context) =>
                {
                    using var buffer = new MemoryStream();
                    await context.Request.Body.CopyToAsync(buffer);
                    context.MarkJobLogLogin(succeeded: false);
                    context.Response.Headers.Location = "https://app.example/retry?sig=" + hostile.Secrets[0].Replace(' ', '-');
                    return Results.Text($"read {buffer.Length} bytes", statusCode: 401);
                });
            },
            ledger: ledger);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/login") { Content = new ByteArrayContent(hostile.Payload) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(hostile.ContentType);
        request.Headers.Referrer = new Uri("https://app.example/form?X-Amz-Signature=" + Uri.EscapeDataString(hostile.Secrets[0]));

        using var response = await web.Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "the business outcome is unchanged");
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo($"read {hostile.Payload.Length} bytes"), "the endpoint read the whole body");
        var log = await web.CompletedInputAsync("/login");
        Assert.That(log.ResponseCode, Is.EqualTo(401));
        Assert.That(log.Type, Is.EqualTo(InputRequestType.UnsuccessfulLogin));
        Assert.That(log.ResponseTimestamp, Is.GreaterThanOrEqualTo(log.RequestTimestamp));
        Assert.That(log.RequestBody, Does.Contain(hostile.Marker));
        await web.App.StopAsync();
        HostileCase.AssertNotInSqliteFile(ledger, [.. hostile.Secrets, .. hostile.Secrets.Select(s => s.Replace(' ', '-'))]);
    }

    [Test]
    public async Task Form_WithNestedAndEncodedSensitiveNames_TheApplicationReadsThemAndNoneReachesTheLedgerFile()
    {
        // What ASP.NET Core's form reader hands the application as Users[0].Password, user[password] and password.
        const string Form = "Users%5B0%5D.Password=Pl4nted-a&Users[1].Password=Pl4nted-b&user[password]=Pl4nted-c&p%61ssword=Pl4nted-d&user=ann";
        var ledger = JobLog.Testing.TestLedger.Sqlite();
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/signup", async (HttpContext context) =>
                {
                    var form = await context.Request.ReadFormAsync();
                    var read = string.Join(",", form["Users[0].Password"], form["Users[1].Password"], form["user[password]"], form["password"]);
                    return Results.Text(read == "Pl4nted-a,Pl4nted-b,Pl4nted-c,Pl4nted-d" ? "read" : "not read");
                });
            },
            ledger: ledger);
        using var content = new StringContent(Form, System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");

        using var response = await web.Client.PostAsync("/signup", content);

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("read"), "the application reads them by these names");
        var log = await web.CompletedInputAsync("/signup");
        Assert.That(log.RequestBody, Does.Contain("user=ann").And.Contain("[Filtered]"));
        await web.App.StopAsync();
        HostileCase.AssertNotInSqliteFile(ledger, ["Pl4nted-a", "Pl4nted-b", "Pl4nted-c", "Pl4nted-d"]);
    }
}
