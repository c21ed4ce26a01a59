// bart: not implemented yet (issue 18 in progress): load_seq2seq refuses the family with a coded error.
#include "errors.h"
#include "seq2seq.h"

namespace bp {

std::shared_ptr<Seq2SeqImpl> load_bart(const std::string& dir, const std::string&) {
  throw Error("E_BAD_CONFIG", dir + "/config.json: model_type 'bart' is not supported yet");
}

}  // namespace bp
