// The identity feature (identity.h): its config, its stage, and the person a reader sees.
#include "features/identity/identity.h"

#include <algorithm>

#include "core/config_check.h"
#include "features/identity/identity_stage.h"

namespace portrait {
namespace {

const Property<IdentityConfig> kProperties[] = {
    BoolProperty<IdentityConfig>("enabled", &IdentityConfig::enabled,
                                 "link devices to the users that log in on them, and answer for the person"),
};

class IdentityFeature : public Feature {
 public:
  std::string_view name() const override { return "identity"; }

  std::vector<ConfigSection> ConfigSections() const override { return IdentityConfigSections(); }

  Status Open(const FeatureHost& host) override {
    host_ = host;
    if (!cfg().enabled || !host.profile_view) return Status::Ok();
    host.profile_view->SetResolver([this](std::string_view id) { return Resolve(id); });
    host.profile_view->AddMember([](const PersonIds& p, JsonWriter& w) {
      if (!p.resolved_from.empty()) w.Key("resolved_from").String(p.resolved_from);
      w.Key("devices").BeginArray();
      for (const std::string& d : p.merged) w.String(d);
      w.EndArray();
      return Status::Ok();
    });
    return Status::Ok();
  }

  StageFactory stage() override {
    if (!cfg().enabled) return nullptr;
    return [this](const StageContext&) { return std::make_unique<IdentityStage>(*host_.config, host_.store); };
  }

 private:
  const IdentityConfig& cfg() const { return host_.config->section<IdentityConfig>(); }

  // The person `id` belongs to: its owner when it is a linked device, and the devices whose
  // owner that user is (a device seen with two users belongs to one: its owner).
  Result<PersonIds> Resolve(std::string_view id) {
    const std::string both[] = {std::string(kDevicesTag), std::string(kOwnerTag)};
    const std::string devices_only[] = {std::string(kDevicesTag)};
    const TimestampMs now = NowMs();
    PersonIds person;
    person.uid = std::string(id);
    ASSIGN_OR_RETURN(Profile asked, host_.store->Get(id, both, now));
    const fusion::TagState* devices = nullptr;
    // An id with devices of its own is a user: it answers for itself, even if it was also
    // seen as another user's device id.
    bool is_user = false;
    for (const TagValue& t : asked.tags) is_user = is_user || (t.name == kDevicesTag && t.state.present);
    for (const TagValue& t : asked.tags) {
      if (t.name == kOwnerTag && is_user) continue;
      if (t.name == kOwnerTag) {
        std::string owner = OwnerOf(t.state);
        if (!owner.empty() && owner != id) {
          person.resolved_from = person.uid;
          person.uid = std::move(owner);
        }
      } else {
        devices = &t.state;
      }
    }
    Profile user;
    if (!person.resolved_from.empty()) {
      ASSIGN_OR_RETURN(user, host_.store->Get(person.uid, devices_only, now));
      devices = user.tags.empty() ? nullptr : &user.tags[0].state;
    }
    if (!devices) return person;
    ASSIGN_OR_RETURN(person.merged, OwnedDevices(*host_.store, person.uid, *devices, now));
    return person;
  }

  FeatureHost host_;
};

}  // namespace

std::vector<ConfigSection> IdentityConfigSections() {
  return {
      {"identity", false, false,
       [](ConfigChecker& c, const toml::node* n, Config* cfg) {
         const toml::table& t = *n->as_table();
         ReadProperties<IdentityConfig>(c, t, "[identity]", kProperties, &cfg->mutable_section<IdentityConfig>(),
                                        {"link"});
         if (auto link = c.Get<std::string>(t, "link", "[identity]", "\"first\" or \"latest\"")) {
           if (*link == "first" || *link == "latest") {
             cfg->mutable_section<IdentityConfig>().latest_wins = *link == "latest";
           } else {
             c.Error(*t.get("link"), "[identity]: link must be \"first\" (a device belongs to the user of its first "
                                     "login, by event time) or \"latest\" (of its newest login), not \"" + *link + "\"");
           }
         }
       }},
      // Its internal tags, in every config (stores fuse them like any tag).
      {"", false, true,
       [](ConfigChecker&, const toml::node*, Config* cfg) {
         TagConfig devices;
         devices.name = std::string(kDevicesTag);
         devices.type = TagType::kSet;
         devices.internal = true;
         cfg->tags.Add(std::move(devices));
         TagConfig owner;
         owner.name = std::string(kOwnerTag);
         owner.type = TagType::kList;
         owner.size_limit = 1;
         owner.sort_by = "rank";
         owner.dedup_by = {"uid"};
         owner.internal = true;
         cfg->tags.Add(std::move(owner));
       }},
  };
}

std::unique_ptr<Feature> MakeIdentityFeature() { return std::make_unique<IdentityFeature>(); }

}  // namespace portrait
